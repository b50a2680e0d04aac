"""Benchmark of the store-and-forward spine (issue 2), run by ``make bench``.

In one run, on the same 1,000 uncompressed 512x512 16-bit CT instances:

1. baseline: DCMTK storescu straight into a pynetdicom storage SCP sink (``deid-gateway sink``);
2. storescu through the gateway (pass-through pipeline) into the same kind of sink,

each timed from the start of storescu until the last instance has arrived in the sink. Prints
both rates, their ratio (target >= 0.8), and the peak RSS of the gateway's processes.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pydicom.uid import generate_uid  # noqa: E402

import dicomgen  # noqa: E402
from harness import Gateway, free_port, port_open, storescu, wait_for  # noqa: E402


def make_data(root: Path, n: int) -> Path:
    """``n`` CT instances of one series (cached between runs)."""
    marker = root.parent / f".{root.name}.complete"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    study = dicomgen.Study.random(rng)
    series = generate_uid()
    for i in range(n):
        ds = dicomgen.ct(study, series, i + 1, size=512, seed=i)
        dicomgen.save(ds, root / f"ct{i:05d}.dcm")
    marker.touch()
    return root


def count_files(root: Path) -> int:
    n = 0
    for dirpath, _dirs, files in os.walk(root):
        if ".tmp" in dirpath:
            continue
        n += sum(1 for f in files if f.endswith(".dcm"))
    return n


class Sink:
    """``deid-gateway sink`` in a subprocess writing to its own folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "sink", "--port", str(self.port),
             "--root", str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(self.port), 30, what="sink")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def timed_send(data: Path, port: int, called: str, sink_root: Path, n: int) -> float:
    """Seconds from the start of storescu until ``n`` instances are in the sink."""
    t0 = time.perf_counter()
    storescu(port, [data], called=called, options=())
    wait_for(lambda: count_files(sink_root) >= n, 600, 0.02, "all instances in the sink")
    return time.perf_counter() - t0


def peak_rss_kib(pid: int) -> dict[str, int]:
    """Peak resident set (VmHWM) of a process and its children, by process."""
    out: dict[str, int] = {}
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        hwm = next((int(line.split()[1]) for line in status.splitlines()
                    if line.startswith("VmHWM")), 0)
        role = "serve" if p == pid else (
            "resource-tracker" if "resource_tracker" in cmd else "worker")
        out[f"{role}[{p}]"] = hwm
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=1000, help="instances (default 1000)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("var/bench/spine"))
    args = ap.parse_args()
    work = args.work.resolve()
    data = make_data(work / f"ct512-{args.n}", args.n)
    size = sum(p.stat().st_size for p in data.glob("*.dcm"))
    print(f"data: {args.n} CT instances 512x512x16 bit, {size / 2**20:.0f} MiB, "
          f"{os.cpu_count()} CPUs")

    run = work / f"run-{int(time.time())}"
    base_sink = Sink(run / "sink-direct")
    try:
        t_base = timed_send(data, base_sink.port, "RESEARCH_PACS", base_sink.root, args.n)
    finally:
        base_sink.stop()

    gw_sink = Sink(run / "sink-gateway")
    g = Gateway(run / "gateway", {
        "pipeline": {"stages": ["passthrough"]},
        "workers": {"count": args.workers},
        "destinations": [{"name": "sink", "ae_title": "RESEARCH_PACS", "host": "127.0.0.1",
                          "port": gw_sink.port}],
        "logging": {"level": "warning"},
    }).start()
    try:
        time.sleep(2.0)  # workers finish importing before the clock starts
        t_gw = timed_send(data, g.port, "DEID_GATEWAY", gw_sink.root, args.n)
        assert g.proc is not None
        rss = peak_rss_kib(g.proc.pid)
    finally:
        g.stop()
        gw_sink.stop()

    r_base, r_gw = args.n / t_base, args.n / t_gw
    print(f"storescu -> sink:            {t_base:7.2f} s  {r_base:7.1f} instances/s  "
          f"{size / t_base / 2**20:6.1f} MiB/s")
    print(f"storescu -> gateway -> sink: {t_gw:7.2f} s  {r_gw:7.1f} instances/s  "
          f"{size / t_gw / 2**20:6.1f} MiB/s")
    print(f"ratio gateway/direct:        {r_gw / r_base:.2f}  (target >= 0.80)")
    print("peak RSS of the gateway (VmHWM): " + ", ".join(
        f"{k} {v / 1024:.0f} MiB" for k, v in sorted(rss.items())))
    print(f"  sum {sum(rss.values()) / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
