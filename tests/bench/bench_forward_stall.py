"""How often a C-STORE response is lost to pynetdicom's requestor reactor (issue 21, #875).

In one run, against one pynetdicom storage SCP in a process of its own (it answers Success
without writing anything, so that responses come back as fast as possible), this sends small
CT instances over one association at a time, one C-STORE after another as the forwarder does,
and counts C-STOREs whose response never reached ``send_c_store`` (DIMSE timeout ``-t``):

* ``stock``: ``AE.associate`` (pynetdicom's ``Association`` and its reactor);
* ``fixed``: ``gateway.forward.association.associate`` (:class:`RequestorAssociation`);

each with the interpreter's default switch interval (5 ms) and with 0.5 ms (the value the
gateway set before issue 21), in alternating rounds. Threads of pure-Python work (``--busy``)
compete for the GIL beside the sender, as the forwarder process's other threads do; with
none, the race is too rare to count on a quiet machine. Prints lost responses per variant and
the send rate of each variant as a ratio to ``stock`` at 5 ms measured in the same run (a lost
response's DIMSE timeout is left out of the rate).

    .venv/bin/python tests/bench/bench_forward_stall.py -n 3000 -r 2 -t 1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pydicom.uid import ExplicitVRLittleEndian  # noqa: E402

import dicomgen  # noqa: E402
from harness import free_port, port_open, wait_for  # noqa: E402


def _scp(port: int) -> None:
    from pynetdicom import AE, evt

    from gateway import flowcontrol

    flowcontrol.install()
    ae = AE(ae_title="STALLSCP")
    ae.add_supported_context(dicomgen.CT_IMAGE, ExplicitVRLittleEndian)
    ae.maximum_associations = 4
    ae.start_server(("127.0.0.1", port), block=True,
                    evt_handlers=[(evt.EVT_C_STORE, lambda _e: 0x0000)])


def _instances(root: Path, n: int) -> list[Path]:
    """``n`` small CT files, sent from disk as the forwarder sends them."""
    import random

    from pydicom.uid import generate_uid

    study = dicomgen.Study.random(random.Random(7))
    series = generate_uid()
    return [dicomgen.save(dicomgen.ct(study, series, i + 1, size=32, seed=i),
                          root / f"ct{i:05d}.dcm") for i in range(n)]


def _busy(done: threading.Event) -> None:
    """Pure-Python work that competes for the GIL (sleep(0) gives it up between rounds)."""
    while not done.is_set():
        sum(i * i for i in range(2000))
        time.sleep(0)


def _round(port: int, datasets: list[Path], fixed: bool, timeout: float) -> tuple[int, float]:
    """Send every data set; returns (responses lost, seconds)."""
    from pynetdicom import AE

    from gateway.forward.association import associate

    ae = AE(ae_title="STALLSCU")
    ae.add_requested_context(dicomgen.CT_IMAGE, ExplicitVRLittleEndian)
    ae.dimse_timeout = timeout
    ae.acse_timeout = 10

    def connect() -> Any:
        if fixed:
            return associate(ae, "127.0.0.1", port, "STALLSCP")
        return ae.associate("127.0.0.1", port, ae_title="STALLSCP")

    lost = 0
    assoc = connect()
    started = time.perf_counter()
    for ds in datasets:
        if not assoc.is_established:
            assoc = connect()
        rsp = assoc.send_c_store(ds)
        if "Status" not in rsp:
            lost += 1
    elapsed = time.perf_counter() - started
    if assoc.is_established:
        assoc.release()
    return lost, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=2000, help="C-STOREs per variant and round")
    ap.add_argument("-r", type=int, default=3, help="rounds")
    ap.add_argument("-t", type=float, default=2.0, help="DIMSE timeout (s)")
    ap.add_argument("--busy", type=int, default=6,
                    help="threads of pure-Python work beside the sender (the forwarder process "
                         "has other destinations, its janitor and health writer)")
    args = ap.parse_args()

    from pynetdicom import _config

    from gateway import flowcontrol

    flowcontrol.install()
    _config.STORE_SEND_CHUNKED_DATASET = True
    port = free_port()
    proc = mp.get_context("spawn").Process(target=_scp, args=(port,), daemon=True)
    proc.start()
    wait_for(lambda: port_open(port), 30, what="SCP")
    tmp = tempfile.TemporaryDirectory()
    datasets = _instances(Path(tmp.name), args.n)
    variants = [("stock", 0.005), ("fixed", 0.005), ("stock", 0.0005), ("fixed", 0.0005)]
    lost: dict[tuple[str, float], int] = defaultdict(int)
    secs: dict[tuple[str, float], float] = defaultdict(float)
    saved = sys.getswitchinterval()
    done = threading.Event()
    for _ in range(args.busy):
        threading.Thread(target=_busy, args=(done,), daemon=True).start()
    try:
        for r in range(args.r):
            for name, interval in variants if r % 2 == 0 else variants[::-1]:
                sys.setswitchinterval(interval)
                n_lost, elapsed = _round(port, datasets, name == "fixed", args.t)
                sys.setswitchinterval(saved)
                lost[(name, interval)] += n_lost
                # a lost response costs the DIMSE timeout: leave it out of the rate
                secs[(name, interval)] += elapsed - n_lost * args.t
                print(f"round {r + 1}: {name} switch={interval * 1000:g} ms: "
                      f"{n_lost} lost of {args.n}, {elapsed:.1f} s", flush=True)
    finally:
        done.set()
        proc.terminate()
        tmp.cleanup()
    total = args.n * args.r
    base = total / secs[("stock", 0.005)]
    print(f"\n{'variant':<24}{'lost':>12}{'C-STORE/s':>12}{'ratio':>8}")
    for key in variants:
        rate = total / secs[key]
        print(f"{key[0] + f' switch={key[1] * 1000:g} ms':<24}"
              f"{f'{lost[key]}/{total}':>12}{rate:>12.0f}{rate / base:>8.2f}")


if __name__ == "__main__":
    main()
