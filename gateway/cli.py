"""The ``deid-gateway`` command line: one sub-command per operator task."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.exc import OperationalError

from gateway.config import ConfigError, Settings, load_settings
from gateway.pixels.commands import register as register_pixels
from gateway.pseudonyms import commands as pseudonym_commands

Handler = Callable[[argparse.Namespace, Settings], int]


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, default=None, help="gateway YAML file")


def _cmd_config_check(args: argparse.Namespace, settings: Settings) -> int:
    print(f"configuration OK ({args.config or 'embedded defaults'})")
    print(f"  receiver {settings.receiver.ae_title}@{settings.receiver.bind_address}:"
          f"{settings.receiver.port}")
    for d in settings.destinations:
        print(f"  destination {d.name}: {d.ae_title}@{d.host}:{d.port}")
    return 0


def _cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.db import make_engine, upgrade
    from gateway.db.engine import current_revision

    engine = make_engine(settings.database.url)
    upgrade(engine)
    print(f"database at revision {current_revision(engine)}")
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.app import serve

    return serve(settings)


def _cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.observe.logs import configure_logging, get_logger
    from gateway.sink import run_sink

    sink = settings.sink
    overrides = {k: v for k, v in (("port", args.port), ("root", args.root),
                                   ("ae_title", args.ae_title)) if v is not None}
    if overrides:
        sink = sink.model_copy(update=overrides)
    configure_logging(settings.logging, process="sink")
    get_logger("gateway.sink").info("sink_started", ae_title=sink.ae_title, port=sink.port,
                                    root=str(sink.root))
    run_sink(sink)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from gateway import admin

    parser = argparse.ArgumentParser(prog="deid-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gateway (receiver, workers, forwarders)")
    _add_config(p)
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("sink", help="run a local research-PACS sink (storage SCP to a folder)")
    _add_config(p)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--root", type=Path, default=None)
    p.add_argument("--ae-title", default=None)
    p.set_defaults(handler=_cmd_sink)

    admin.register(sub, _add_config)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    pc = csub.add_parser("check", help="validate a configuration file")
    _add_config(pc)
    pc.set_defaults(handler=_cmd_config_check)

    p = sub.add_parser("db", help="database tools")
    dsub = p.add_subparsers(dest="db_command", required=True)
    pu = dsub.add_parser("upgrade", help="migrate the database to the newest schema")
    _add_config(pu)
    pu.set_defaults(handler=_cmd_db_upgrade)

    pseudonym_commands.register(sub)
    admin.register_audit_list(sub)
    from gateway.deid.commands import register as register_deid

    register_deid(sub)
    register_pixels(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("serve", "sink"):
        # `deid-gateway status | head` ends quietly, as a command-line tool should (the
        # long-running services keep Python's default: a closed log pipe is an error there)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        settings = load_settings(getattr(args, "config", None))
    except ConfigError as err:
        print(f"deid-gateway: {err}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except OperationalError as err:
        # The driver's text can carry the URL or statement parameters: name the class only.
        print(f"deid-gateway: cannot use the database ({type(err.orig).__name__}); "
              "check database.url and that the server is reachable", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
