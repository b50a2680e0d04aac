"""Operator commands: ``status`` and ``quarantine list|show|release|purge``.

They read and change the same database and spool as a running gateway, safely: every change is
one transaction through the job store and one durable move in the spool.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gateway.config import Settings
from gateway.jobs.states import JobState
from gateway.jobs.store import JobInfo, JobStore
from gateway.spool import Spool

Out = Callable[[str], None]


def _open(settings: Settings) -> tuple[JobStore, Spool]:
    from gateway.app import open_store
    from gateway.db import upgrade

    engine, store = open_store(settings)
    upgrade(engine)
    return store, Spool(settings.spool.root)


def cmd_status(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, spool = _open(settings)
    counts = store.counts()
    out("jobs by state:")
    for state in JobState:
        out(f"  {state.value:<12} {counts.get(state.value, 0)}")
    out("deliveries by destination:")
    dcounts = store.delivery_counts()
    for dest in settings.destinations:
        row = dcounts.get(dest.name, {})
        parts = " ".join(f"{k}={v}" for k, v in sorted(row.items())) or "none yet"
        out(f"  {dest.name} ({dest.ae_title}@{dest.host}:{dest.port}): {parts}")
    if spool.root.exists():
        out(f"spool: {spool.used_bytes()} bytes in use, {spool.free_bytes()} bytes free")
    return 0


def _resolve(store: JobStore, job_ref: str) -> JobInfo | None:
    info = store.get(job_ref)
    if info is not None:
        return info
    matches = store.find(job_ref)
    return matches[0] if len(matches) == 1 else None


def cmd_list(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, _ = _open(settings)
    jobs = store.list_state(JobState.QUARANTINED, limit=args.limit)
    if not jobs:
        out("quarantine is empty")
        return 0
    out(f"{'job':<32}  {'since (UTC)':<19}  {'class':<10}  {'modality':<8}  reason")
    for j in jobs:
        out(
            f"{j.id:<32}  {j.updated_at:%Y-%m-%d %H:%M:%S}  {j.reason_class or '':<10}  "
            f"{j.modality:<8}  {j.last_error or ''}"
        )
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, spool = _open(settings)
    info = _resolve(store, args.job)
    if info is None:
        print(f"no such job: {args.job}", file=sys.stderr)
        return 1
    out(f"job:            {info.id}")
    out(f"state:          {info.state}")
    out(f"reason class:   {info.reason_class or ''}")
    out(f"reason:         {info.last_error or ''}")
    out(f"attempts:       {info.attempts}")
    out(f"received:       {info.received_at:%Y-%m-%d %H:%M:%S} UTC from {info.calling_ae}")
    out(f"updated:        {info.updated_at:%Y-%m-%d %H:%M:%S} UTC")
    out(f"SOP class:      {info.sop_class_uid}")
    out(f"transfer syntax:{info.transfer_syntax_uid}")
    out(f"modality:       {info.modality}")
    out(f"size:           {info.size_bytes} bytes")
    out(f"rules:          {info.ruleset or ''}")
    for dest, state, attempts, err in info.deliveries:
        out(f"delivery:       {dest}: {state} after {attempts} attempts {err or ''}")
    for label, path in (
        ("original", spool.quarantined_original(info.id)),
        ("output", spool.quarantined_output(info.id)),
        ("incoming", spool.incoming_path(info.id)),
    ):
        if path.exists():
            out(f"{label + ' file:':<16}{path}")
    return 0


def _targets(store: JobStore, args: argparse.Namespace) -> list[JobInfo] | None:
    if args.all:
        jobs = store.list_state(JobState.QUARANTINED, limit=1_000_000)
        if args.reason_class:
            jobs = [j for j in jobs if j.reason_class == args.reason_class]
        return jobs
    if not args.jobs:
        print("name one or more jobs, or --all", file=sys.stderr)
        return None
    found = []
    for ref in args.jobs:
        info = _resolve(store, ref)
        if info is None or info.state != JobState.QUARANTINED:
            print(f"not a quarantined job: {ref}", file=sys.stderr)
            return None
        found.append(info)
    return found


def cmd_release(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, spool = _open(settings)
    jobs = _targets(store, args)
    if jobs is None:
        return 1
    for j in jobs:
        spool.from_quarantine(j.id)
        if store.release_quarantined(j.id):
            out(f"released {j.id}")
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, spool = _open(settings)
    jobs = _targets(store, args)
    if jobs is None:
        return 1
    if not args.yes:
        print(f"would delete {len(jobs)} quarantined job(s) and their files; add --yes",
              file=sys.stderr)
        return 1
    for j in jobs:
        if store.purge(j.id):
            spool.remove_job(j.id)
            out(f"purged {j.id}")
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub.add_parser("status", help="counts of jobs per state and per destination")
    add_config(p)
    p.set_defaults(handler=cmd_status)

    q = sub.add_parser("quarantine", help="inspect and release held instances")
    qsub = q.add_subparsers(dest="quarantine_command", required=True)
    p = qsub.add_parser("list", help="list quarantined jobs with their reasons")
    add_config(p)
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(handler=cmd_list)
    p = qsub.add_parser("show", help="details of one job")
    add_config(p)
    p.add_argument("job", help="job id (or an unambiguous prefix)")
    p.set_defaults(handler=cmd_show)
    for name, handler, helptext in (
        ("release", cmd_release, "process quarantined jobs again from their original bytes"),
        ("purge", cmd_purge, "delete quarantined jobs and their files"),
    ):
        p = qsub.add_parser(name, help=helptext)
        add_config(p)
        p.add_argument("jobs", nargs="*", help="job ids (or unambiguous prefixes)")
        p.add_argument("--all", action="store_true", help="every quarantined job")
        p.add_argument("--reason-class", help="with --all: only this reason class")
        if name == "purge":
            p.add_argument("--yes", action="store_true", help="really delete")
        p.set_defaults(handler=handler)
