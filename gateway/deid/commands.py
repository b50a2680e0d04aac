"""CLI sub-commands of the de-identification engine: ``explain`` and ``anonymize``."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from gateway.config import Settings
from gateway.deid.explain import explain_lines
from gateway.deid.offline import anonymize_tree
from gateway.deid.profile import ProfileError
from gateway.deid.stage import build_deidentifier
from gateway.observe.logs import configure_logging
from gateway.pseudonyms.interface import InMemoryPseudonymizer, Pseudonymizer


class CommandError(Exception):
    """A CLI command cannot run; the message says why (never with a patient value)."""


def prepare_store(settings: Settings) -> None:
    """Create the site secret on first use, as ``serve`` does before it starts workers."""
    try:
        from gateway.pseudonyms.secret import ensure_secret
    except ImportError:
        return  # no secret management in this build: open_store says what is missing
    ensure_secret(settings)


def open_store(settings: Settings) -> Pseudonymizer:
    """The configured, database-backed pseudonym store (``gateway.pseudonyms.factory``).

    The one place this package reaches the store; ``anonymize_tree`` takes it as a factory so
    that tests pass an ``InMemoryPseudonymizer`` instead.
    """
    try:
        from gateway.pseudonyms.factory import open_pseudonymizer
    except ImportError:
        raise CommandError(
            "the pseudonym store (gateway.pseudonyms.factory) is not part of this build; "
            "anonymize needs it to keep pseudonyms consistent across runs"
        ) from None
    store: Pseudonymizer = open_pseudonymizer(settings)
    return store


def _close(store: Pseudonymizer) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _settings_with_profile(settings: Settings, profile: str | None) -> Settings:
    if profile is None:
        return settings
    deid = settings.deid.model_copy(update={"profile": profile})
    return settings.model_copy(update={"deid": deid})


def _cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    settings = _settings_with_profile(settings, args.profile)
    try:
        engine = build_deidentifier(settings.deid, InMemoryPseudonymizer())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(args.file)
    except ProfileError as err:
        print(f"deid-gateway: {err}", file=sys.stderr)
        return 2
    except (InvalidDicomError, OSError) as err:
        print(f"deid-gateway: {args.file}: not a readable DICOM file ({type(err).__name__})",
              file=sys.stderr)
        return 2
    for line in explain_lines(engine, ds, show_values=args.show_values):
        print(line)
    return 0


def _cmd_anonymize(args: argparse.Namespace, settings: Settings) -> int:
    settings = _settings_with_profile(settings, args.profile)
    if not args.input.exists():
        print(f"deid-gateway: {args.input}: no such file or folder", file=sys.stderr)
        return 2
    try:
        build_deidentifier(settings.deid, InMemoryPseudonymizer())  # validate the profile now
        configure_logging(settings.logging, process="anonymize")  # no value in a warning
        prepare_store(settings)
        _close(open_store(settings))  # fail fast, in this process, if the store cannot open
        summary = anonymize_tree(args.input, args.output, settings, open_store,
                                 jobs=args.jobs, quarantine=args.quarantine)
    except (ProfileError, CommandError) as err:
        print(f"deid-gateway: {err}", file=sys.stderr)
        return 2
    for line in summary.lines():
        print(line)
    return 0 if summary.quarantined == 0 else 1


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, default=None, help="gateway YAML file")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    """Add ``explain`` and ``anonymize`` to the ``deid-gateway`` parser."""
    p = sub.add_parser("explain", help="show what a profile does to each attribute of a file")
    p.add_argument("file", type=Path)
    p.add_argument("-p", "--profile", default=None, help="profile name or YAML path")
    p.add_argument("--show-values", action="store_true", help="also print the values")
    _add_config(p)
    p.set_defaults(handler=_cmd_explain)

    p = sub.add_parser("anonymize", help="de-identify a file or folder tree offline")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("-p", "--profile", default=None, help="profile name or YAML path")
    p.add_argument("-j", "--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--quarantine", type=Path, default=None,
                   help="copy inputs held in quarantine to this folder")
    _add_config(p)
    p.set_defaults(handler=_cmd_anonymize)
