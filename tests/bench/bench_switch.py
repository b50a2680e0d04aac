"""Does ``sys.setswitchinterval(0.0005)`` still pay? (issue 21)

Until issue 21, ``configure_pynetdicom`` set a 0.5 ms switch interval in the serve and forwarder
processes. In one run, on the spine benchmark's CT instances (``bench_spine.py``), this
alternates:

1. baseline: DCMTK storescu straight into a pynetdicom sink;
2. ``default``: storescu through the gateway of this tree (the interpreter's 5 ms interval);
3. ``0.5 ms``: the same gateway, but a copy of this tree's ``gateway`` package whose
   ``configure_pynetdicom`` sets the 0.5 ms interval again (the gateway process runs with its
   folder first on ``sys.path``, so the copy is what it and its children import);

and prints each gateway run's rate as a ratio to the baseline of its round, then the mean
ratio of each variant.

    TCP_NODELAY=1 .venv/bin/python tests/bench/bench_switch.py -n 400 -r 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_spine import Sink, make_data, timed_send  # noqa: E402

import gateway  # noqa: E402

from harness import Gateway  # noqa: E402

TWEAK = "    sys.setswitchinterval(0.0005)\n"


def with_tweak(root: Path) -> None:
    """A copy of this tree's gateway package in ``root`` that sets the 0.5 ms interval."""
    src = Path(gateway.__file__).parent
    dst = root / "gateway"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    app = dst / "app.py"
    text = app.read_text()
    anchor = "    flowcontrol.install()\n"
    assert anchor in text and TWEAK not in text
    app.write_text(text.replace(anchor, anchor + "    import sys\n\n" + TWEAK, 1))


def gateway_run(root: Path, data: Path, n: int, workers: int, tweak: bool) -> float:
    sink = Sink(root / "sink")
    (root / "gateway").mkdir(parents=True)
    if tweak:
        with_tweak(root / "gateway")
    g = Gateway(root / "gateway", {
        "pipeline": {"stages": ["passthrough"]},
        "workers": {"count": workers},
        "destinations": [{"name": "sink", "ae_title": "RESEARCH_PACS", "host": "127.0.0.1",
                          "port": sink.port}],
        "logging": {"level": "warning"},
    }).start()
    try:
        time.sleep(2.0)  # workers finish importing before the clock starts
        return timed_send(data, g.port, "DEID_GATEWAY", sink.root, n)
    finally:
        g.stop()
        sink.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=400)
    ap.add_argument("-r", type=int, default=3, help="rounds")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("var/bench/spine"))
    args = ap.parse_args()
    work = args.work.resolve()
    data = make_data(work / f"ct512-{args.n}", args.n)
    run = work / f"switch-{int(time.time())}"
    ratios: dict[str, list[float]] = {"default": [], "0.5 ms": []}
    for r in range(args.r):
        base_sink = Sink(run / f"r{r}" / "direct")
        try:
            t_base = timed_send(data, base_sink.port, "RESEARCH_PACS", base_sink.root, args.n)
        finally:
            base_sink.stop()
        order = list(ratios) if r % 2 == 0 else list(ratios)[::-1]
        line = [f"round {r + 1}: direct {args.n / t_base:6.1f}/s"]
        for name in order:
            t = gateway_run(run / f"r{r}" / name.replace(" ", ""), data, args.n, args.workers,
                            tweak=name != "default")
            ratios[name].append(t_base / t)
            line.append(f"{name} {args.n / t:6.1f}/s ratio {t_base / t:.2f}")
        print(" | ".join(line), flush=True)
    for name, values in ratios.items():
        print(f"{name:>8}: mean ratio {statistics.mean(values):.3f} "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    d, t = statistics.mean(ratios["default"]), statistics.mean(ratios["0.5 ms"])
    print(f"0.5 ms / default: {t / d:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
