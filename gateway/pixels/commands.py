"""``deid-gateway pixels ...``: run the scrubber on its own, or check files against the policy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gateway.config import Settings


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, default=None, help="gateway YAML file")


def _cmd_scrubber(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the detector on the configured socket until SIGTERM (as ``serve`` would)."""
    from gateway.pixels.service import run_scrubber, socket_path

    print(f"pixel scrubber on {socket_path(settings)}", flush=True)
    run_scrubber(settings)
    return 0


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Per file: the policy's decision and the boxes it would blank (coordinates only)."""
    import pydicom

    from gateway.pixels import frames as px
    from gateway.pixels.boxes import prepare
    from gateway.pixels.policy import decide
    from gateway.pixels.service import InProcessClient
    from gateway.pixels.signatures import load_signatures

    cfg = settings.pixels
    signatures = load_signatures(cfg.signatures_path())
    client = InProcessClient(cfg)
    status = 0
    for path in args.files:
        ds = pydicom.dcmread(path)
        d = decide(ds, cfg.policy, signatures)
        row: dict[str, object] = {"file": str(path), "scrub": d.scrub, "reasons": list(d.reasons)}
        if d.scrub:
            try:
                dec = px.decode(ds)
            except px.PixelDecodeError as err:
                row["error"] = str(err)
                status = 1
            else:
                rows, cols = int(dec.frames.shape[1]), int(dec.frames.shape[2])
                found = client.detect([px.display_frame(dec, i, ds) for i in range(dec.count)]) \
                    if d.detect else [[] for _ in range(dec.count)]
                row["frames"] = [[[b.x0, b.y0, b.x1, b.y1] for b in prepare(
                    f, rows, cols, cfg.model.pad_px, cfg.model.pad_fraction)] for f in found]
                row["signature_boxes"] = [
                    [b.x0, b.y0, b.x1, b.y1] for s in d.signatures for b in s.resolve(rows, cols)]
        print(json.dumps(row))
    return status


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``pixels`` command group to the gateway's parser."""
    p = sub.add_parser("pixels", help="pixel scrubbing tools")
    psub = p.add_subparsers(dest="pixels_command", required=True)
    ps = psub.add_parser("scrubber", help="run the pixel scrubber in the foreground")
    _add_config(ps)
    ps.set_defaults(handler=_cmd_scrubber)
    pc = psub.add_parser("check", help="show what the pixel stage would blank in files")
    _add_config(pc)
    pc.add_argument("files", nargs="+", type=Path)
    pc.set_defaults(handler=_cmd_check)
