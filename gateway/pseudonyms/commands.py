"""Operator commands of the pseudonym store: keys, lookup table, re-identification, audit, map.

``register(sub)`` adds them to the ``deid-gateway`` parser. Errors are printed as one line
without patient values or database parameters, and give a non-zero exit status:
1 for an error, 3 when re-identification is disabled by the configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from gateway.config import Settings
from gateway.pseudonyms.interface import PseudonymUnavailable
from gateway.pseudonyms.lookup import LookupTableError, import_lookup, read_lookup_csv
from gateway.pseudonyms.secret import SecretError, init_secret_file, load_secret
from gateway.pseudonyms.store import verify_secret

Handler = Callable[[argparse.Namespace, Settings], int]
EXIT_ERROR = 1
EXIT_DISABLED = 3
BACKUP_HINT = (
    "Back it up now, somewhere other than this machine: losing it (or using another one) gives "
    "every patient and UID new pseudonyms. See docs/pseudonyms.md."
)


def _fail(message: str) -> int:
    print(f"deid-gateway: {message}", file=sys.stderr)
    return EXIT_ERROR


def _guarded(handler: Handler) -> Handler:
    """Turn the expected failures into one-line messages; database errors lose their details
    (their parameters may hold originals)."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(args, settings)
        except (SecretError, PseudonymUnavailable, LookupTableError) as err:
            return _fail(str(err))
        except SQLAlchemyError as err:
            return _fail(f"database error ({type(err).__name__}); details withheld")
        except OSError as err:
            return _fail(f"{err.filename or 'file'}: {err.strerror}")

    return run


def _keys_init(args: argparse.Namespace, settings: Settings) -> int:
    p = settings.pseudonyms
    if args.path is None and p.secret_env is not None:
        return _fail(
            f"the configuration takes the secret from the environment variable {p.secret_env}; "
            "use --path FILE to create one, then put the content of FILE into that variable"
        )
    path: Path = args.path if args.path is not None else p.secret_path
    init_secret_file(path)
    print(f"created the site secret {path} (mode 0600)")
    print(BACKUP_HINT)
    return 0


def _keys_check(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.pseudonyms.factory import open_engine

    secret = load_secret(settings)
    engine = open_engine(settings)
    try:
        verify_secret(engine, secret, settings.node_id)
    finally:
        engine.dispose()
    print("the site secret matches this database's pseudonym map")
    return 0


def _lookup_import(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.pseudonyms.factory import open_pseudonymizer

    entries = read_lookup_csv(args.file)
    with open_pseudonymizer(settings) as store:
        report = import_lookup(store, entries)
    print(f"lookup table imported: {report.added} added, {report.unchanged} already present")
    return 0


def _reidentify(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.pseudonyms.factory import open_engine
    from gateway.pseudonyms.reidentify import ReidentificationDisabled, reidentify

    engine = open_engine(settings)
    try:
        matches = reidentify(engine, settings.pseudonyms.reidentification_enabled,
                             settings.node_id, args.pseudonym, args.reason)
    except ReidentificationDisabled as err:
        print(f"deid-gateway: {err}; the attempt was recorded", file=sys.stderr)
        return EXIT_DISABLED
    finally:
        engine.dispose()
    if not matches:
        print("deid-gateway: no original is known for this pseudonym", file=sys.stderr)
        return EXIT_ERROR
    for m in matches:
        print(f"{m.kind}\t{m.original}")
        for name, value in m.details:
            print(f"  {name}\t{value}")
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.pseudonyms.factory import open_engine
    from gateway.pseudonyms.reidentify import audit_entries

    engine = open_engine(settings)
    try:
        entries = audit_entries(engine, args.limit)
    finally:
        engine.dispose()
    print("at\tuser\tnode\taction\tsubject\toutcome\treason")
    for e in entries:
        at = e.at.isoformat(timespec="seconds") + "Z"
        print(f"{at}\t{e.os_user}\t{e.node_id}\t{e.action}\t{e.subject}\t{e.outcome}\t{e.reason}")
    return 0


def _map_export(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.pseudonyms.factory import open_engine
    from gateway.pseudonyms.reidentify import ReidentificationDisabled, export_maps

    engine = open_engine(settings)
    try:
        uids, patients = export_maps(engine, settings.pseudonyms.reidentification_enabled,
                                     settings.node_id, args.dir, args.reason, args.force)
    except ReidentificationDisabled as err:
        print(f"deid-gateway: {err}; the attempt was recorded", file=sys.stderr)
        return EXIT_DISABLED
    except FileExistsError as err:
        return _fail(f"{err.filename} exists; use --force to replace it")
    finally:
        engine.dispose()
    print(f"wrote {uids} UID and {patients} Patient ID mappings to {args.dir} (mode 0600)")
    return 0


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, default=None, help="gateway YAML file")


def _leaf(sub: argparse._SubParsersAction, name: str, helptext: str,
          handler: Handler) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=helptext, description=helptext)
    _add_config(p)
    p.set_defaults(handler=_guarded(handler))
    return p


def _reason(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reason", default="", help="why (recorded in the audit table)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``keys``, ``lookup``, ``reidentify``, ``audit`` and ``map`` to the CLI."""
    keys = sub.add_parser("keys", help="the site secret that keys every pseudonym")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    p = _leaf(ksub, "init", "create a new random site secret (mode 0600; never replaces one)",
              _keys_init)
    p.add_argument("--path", type=Path, default=None,
                   help="where to create it (default: pseudonyms.secret_file or var/)")
    _leaf(ksub, "check", "check that the site secret is the one the map was written with",
          _keys_check)

    lookup = sub.add_parser("lookup", help="the site lookup table of patient pseudonyms")
    lsub = lookup.add_subparsers(dest="lookup_command", required=True)
    p = _leaf(lsub, "import", "import patient pseudonyms from CSV (patient_id, issuer, "
              "pseudonym_id, pseudonym_name)", _lookup_import)
    p.add_argument("file", type=Path, help="CSV file")

    p = _leaf(sub, "reidentify", "print the original of a pseudonym (audited; off by default)",
              _reidentify)
    p.add_argument("pseudonym", help="a pseudonymous UID, Patient ID, name or identifier")
    _reason(p)

    p = _leaf(sub, "audit", "list re-identification requests and map exports", _audit)
    p.add_argument("--limit", type=int, default=100, help="newest N entries (default 100)")

    mapp = sub.add_parser("map", help="the pseudonym map")
    msub = mapp.add_subparsers(dest="map_command", required=True)
    p = _leaf(msub, "export", "write uid_mapping.csv and patid_mapping.csv (MIDI-B scorer "
              "format; audited; needs re-identification enabled)", _map_export)
    p.add_argument("dir", type=Path, help="folder to write into")
    p.add_argument("--force", action="store_true", help="replace existing files")
    _reason(p)
