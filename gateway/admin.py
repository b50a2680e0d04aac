"""Operator commands: ``status``, ``quarantine list|show|release|purge`` and ``audit list``.

They read and change the same database and spool as a running gateway, safely: every change is
one transaction through the job store (with its audit row) and one durable move in the spool.

Quarantined jobs are listed by group (:mod:`gateway.jobs.groups`): one reason class, stage and
normalised reason, with a short stable id that ``release``, ``purge`` and ``show`` accept. A
release may name a profile or a site override file for the deidentify stage of those jobs; it
is validated before anything is released, and its text is kept in the database. Every release
and purge is audited with who, when, what, which rules and the note. Output names job ids,
group ids, reason classes, tag paths, profile names and counts, never a patient value.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import hashlib
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from gateway.config import Settings
from gateway.jobs import decisions
from gateway.jobs.decisions import Decision, DecisionEntry
from gateway.jobs.groups import Group, group_entries
from gateway.jobs.models import utcnow
from gateway.jobs.states import JobState
from gateway.jobs.store import JobInfo, JobStore
from gateway.pipeline.stage import ReleaseRules, RulesText
from gateway.spool import Spool

Out = Callable[[str], None]
EXIT_ERROR = 1
EXIT_INVALID = 2  # a profile or override that does not validate, a bad operator name
_OPERATOR = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
SHOWN_JOBS = 50


def _fail(message: str, status: int = EXIT_ERROR) -> int:
    print(f"deid-gateway: {message}", file=sys.stderr)
    return status


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


def _find_group(groups: Sequence[Group], ref: str) -> Group | None:
    """The group with id ``ref``, or the only one whose id starts with it."""
    exact = [g for g in groups if g.id == ref]
    if exact:
        return exact[0]
    matches = [g for g in groups if ref and g.id.startswith(ref)]
    return matches[0] if len(matches) == 1 else None


def _when(t: object) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}"


# -- list ----------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, _ = _open(settings)
    if args.jobs and args.group is None:
        return _list_jobs(store.list_state(JobState.QUARANTINED, limit=args.limit), out)
    groups = group_entries(store.quarantine_entries())
    if args.group is not None:
        group = _find_group(groups, args.group)
        if group is None:
            return _fail(f"no quarantine group {args.group}")
        found = (store.get(job_id) for job_id in group.job_ids[:args.limit])
        return _list_jobs([j for j in found if j is not None], out)
    if not groups:
        out("quarantine is empty")
        return 0
    out(f"{'group':<10}  {'jobs':>5}  {'newest (UTC)':<19}  {'oldest (UTC)':<19}  "
        f"{'class':<10}  {'stage':<10}  reason")
    for g in groups[:args.limit]:
        out(f"{g.id:<10}  {g.count:>5}  {_when(g.newest)}  {_when(g.oldest)}  "
            f"{g.reason_class:<10}  {g.stage or '-':<10}  {g.reason}")
    total = sum(g.count for g in groups)
    out(f"{total} job(s) in {len(groups)} group(s); "
        "'quarantine list --group ID' lists the jobs of one")
    return 0


def _list_jobs(jobs: Sequence[JobInfo], out: Out) -> int:
    """One line per job, oldest first, as ``quarantine list`` printed them before groups."""
    if not jobs:
        out("quarantine is empty")
        return 0
    out(f"{'job':<32}  {'since (UTC)':<19}  {'group':<10}  {'class':<10}  {'modality':<8}  "
        "reason")
    for j in jobs:
        out(f"{j.id:<32}  {_when(j.updated_at)}  {j.quarantine_entry().group():<10}  "
            f"{j.reason_class or '':<10}  {j.modality:<8}  {j.last_error or ''}")
    return 0


# -- show ----------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, spool = _open(settings)
    if (args.job is None) == (args.group is None):
        return _fail("name a job, or --group ID")
    if args.group is not None:
        return _show_group(store, args.group, out)
    info = _resolve(store, args.job)
    if info is None:
        return _fail(f"no such job: {args.job}")
    _show_job(store, spool, info, out)
    return 0


def _show_job(store: JobStore, spool: Spool, info: JobInfo, out: Out) -> None:
    out(f"job:            {info.id}")
    out(f"state:          {info.state}")
    out(f"reason class:   {info.reason_class or ''}")
    out(f"reason:         {info.last_error or ''}")
    if info.state == JobState.QUARANTINED:
        entry = info.quarantine_entry()
        out(f"stage:          {entry.stage or '-'}")
        out(f"group:          {entry.group()}")
        for tag_path in entry.paths():
            out(f"path:           {tag_path}")
    out(f"attempts:       {info.attempts}")
    out(f"received:       {_when(info.received_at)} UTC from {info.calling_ae}")
    out(f"updated:        {_when(info.updated_at)} UTC")
    out(f"SOP class:      {info.sop_class_uid}")
    out(f"transfer syntax:{info.transfer_syntax_uid}")
    out(f"modality:       {info.modality}")
    out(f"size:           {info.size_bytes} bytes")
    out(f"rules:          {info.ruleset or ''}")
    for kind, sha in (("profile", info.release_profile), ("override", info.release_override)):
        if sha:
            text = decisions.load_rules(store.engine, sha)
            out(f"released with:  {kind} {text.name if text else '?'} sha256:{sha}")
    for dest, state, attempts, err in info.deliveries:
        out(f"delivery:       {dest}: {state} after {attempts} attempts {err or ''}")
    for name, path in (
        ("original", spool.quarantined_original(info.id)),
        ("output", spool.quarantined_output(info.id)),
        ("incoming", spool.incoming_path(info.id)),
    ):
        if path.exists():
            out(f"{name + ' file:':<16}{path}")
    _history(decisions.entries_for_jobs(store.engine, [info.id]), out)


def _show_group(store: JobStore, ref: str, out: Out) -> int:
    group = _find_group(group_entries(store.quarantine_entries()), ref)
    past = decisions.entries_for_subject(store.engine, f"group {group.id if group else ref}")
    if group is None:
        if not past:
            return _fail(f"no quarantine group {ref}")
        out(f"group:          {ref} (no job is quarantined in it now)")
        _history(past, out)
        return 0
    out(f"group:          {group.id}")
    out(f"jobs:           {group.count}")
    out(f"newest:         {_when(group.newest)} UTC")
    out(f"oldest:         {_when(group.oldest)} UTC")
    out(f"reason class:   {group.reason_class}")
    out(f"stage:          {group.stage or '-'}")
    out(f"reason:         {group.reason}")
    for path in group.paths:
        out(f"path:           {path}")
    for job_id in group.job_ids[:SHOWN_JOBS]:
        out(f"job:            {job_id}")
    if group.count > SHOWN_JOBS:
        out(f"                and {group.count - SHOWN_JOBS} more ('quarantine list --group')")
    seen = {e.id for e in past}
    involved = decisions.entries_for_jobs(store.engine, group.job_ids)
    _history(sorted([*past, *(e for e in involved if e.id not in seen)],
                    key=lambda e: (e.at, e.id)), out)
    return 0


def _rules_text(d: Decision) -> str:
    parts = [f"{kind} {name} sha256:{sha}"
             for kind, name, sha in (("profile", d.profile, d.profile_sha256),
                                     ("override", d.override, d.override_sha256)) if sha]
    return "; ".join(parts)


def _history(entries: Sequence[DecisionEntry], out: Out) -> None:
    for e in entries:
        d = e.decision
        rules = _rules_text(d)
        extra = "".join(x for x in (f" with {rules}" if rules else "",
                                    f"; note: {d.note}" if d.note else "") if x)
        out(f"history:        {e.at:%Y-%m-%d %H:%M:%S} UTC {d.action} by {d.operator} "
            f"({d.subject}, {len(e.job_ids)} job(s)){extra}")


# -- release and purge ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Targets:
    jobs: list[str]
    subject: str


def _targets(store: JobStore, args: argparse.Namespace) -> _Targets | None:
    chosen = sum(bool(x) for x in (args.jobs, args.all, args.group is not None))
    if chosen != 1:
        print("deid-gateway: name one or more jobs, or --group ID, or --all", file=sys.stderr)
        return None
    if args.reason_class and not args.all:
        print("deid-gateway: --reason-class goes with --all", file=sys.stderr)
        return None
    if args.all:
        groups = group_entries(store.quarantine_entries())
        jobs = [j for g in groups if not args.reason_class or g.reason_class == args.reason_class
                for j in g.job_ids]
        subject = f"all reason-class {args.reason_class}" if args.reason_class else "all"
        return _Targets(jobs, subject)
    if args.group is not None:
        group = _find_group(group_entries(store.quarantine_entries()), args.group)
        if group is None:
            print(f"deid-gateway: no quarantine group {args.group}", file=sys.stderr)
            return None
        return _Targets(list(group.job_ids), f"group {group.id}")
    found = []
    for ref in args.jobs:
        info = _resolve(store, ref)
        if info is None or info.state != JobState.QUARANTINED:
            print(f"deid-gateway: not a quarantined job: {ref}", file=sys.stderr)
            return None
        found.append(info.id)
    return _Targets(found, "jobs")


def _operator(args: argparse.Namespace) -> tuple[str, str] | None:
    """(who decided, the login name of the real user id); None for an unusable --operator."""
    from gateway.pseudonyms.reidentify import os_user

    real = os_user()
    if args.operator is None:
        try:
            return getpass.getuser()[:64], real
        except (OSError, KeyError):
            return real, real
    name = args.operator.strip()
    return (name, real) if _OPERATOR.fullmatch(name) else None


def _note(text: str) -> str:
    return _CONTROL.sub(" ", text).strip()[:decisions.NOTE_MAX]


class RulesError(Exception):
    """A profile or override given to ``release`` cannot be used (the message says why)."""


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or "not UTF-8 text"
        raise RulesError(f"{path}: cannot read {what} ({reason})") from None


def release_rules(settings: Settings, profile: str | None, override: Path | None
                  ) -> ReleaseRules:
    """Read and validate what a release names, compiled exactly as a worker will compile it;
    raises :class:`RulesError` naming the file, line and key of a problem."""
    from gateway.deid.profile import ProfileError, parse_site_override, resolve_profile_path
    from gateway.deid.ruledata import DEFAULT_RULES_DIR
    from gateway.deid.stage import compile_release
    from gateway.pipeline.compose import has_release_stage

    if not has_release_stage(settings.pipeline.stages):
        raise RulesError("pipeline.stages has no deidentify stage: a profile or override "
                         "would not be used")
    rules_dir = Path(settings.deid.rules_dir) if settings.deid.rules_dir else DEFAULT_RULES_DIR
    ptext = otext = None
    try:
        if profile is not None:
            text = _read(resolve_profile_path(profile, rules_dir), "profile")
            ptext = RulesText(hashlib.sha256(text.encode()).hexdigest(), profile, text)
        if override is not None:
            text = _read(override, "site override")
            site = parse_site_override(text, str(override))
            otext = RulesText(hashlib.sha256(text.encode()).hexdigest(), site.name, text)
        rules = ReleaseRules(ptext, otext)
        compile_release(settings.deid, rules)
    except ProfileError as err:
        raise RulesError(str(err)) from None
    return rules


def _decision(args: argparse.Namespace, action: str, subject: str,
              rules: ReleaseRules | None = None) -> Decision | None:
    who = _operator(args)
    if who is None:
        return None
    p = rules.profile if rules else None
    o = rules.override if rules else None
    return Decision(action, who[0], who[1], subject, _note(args.note or ""),
                    p.name if p else None, p.sha256 if p else None,
                    o.name if o else None, o.sha256 if o else None)


def cmd_release(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    rules = ReleaseRules()
    if args.profile is not None or args.override is not None:
        try:
            rules = release_rules(settings, args.profile, args.override)
        except RulesError as err:
            return _fail(f"{err}\nnothing was released", EXIT_INVALID)
    store, spool = _open(settings)
    targets = _targets(store, args)
    if targets is None:
        return EXIT_ERROR
    decision = _decision(args, "release", targets.subject, rules)
    if decision is None:
        return _fail("--operator: 1-64 characters, no control characters", EXIT_INVALID)
    for text in (rules.profile, rules.override):
        if text is not None:
            decisions.save_rules(store.engine, text, utcnow())
    for job_id in targets.jobs:
        spool.from_quarantine(job_id)
    released = store.release_jobs(targets.jobs, decision)
    for job_id in released:
        out(f"released {job_id}")
    with_rules = _rules_text(decision)
    out(f"released {len(released)} job(s) ({targets.subject})"
        + (f" with {with_rules}" if with_rules else "") + f"; audited as {decision.operator}")
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, spool = _open(settings)
    targets = _targets(store, args)
    if targets is None:
        return EXIT_ERROR
    if not args.yes:
        return _fail(f"would delete {len(targets.jobs)} quarantined job(s) and their files; "
                     "add --yes")
    decision = _decision(args, "purge", targets.subject)
    if decision is None:
        return _fail("--operator: 1-64 characters, no control characters", EXIT_INVALID)
    purged = store.purge_jobs(targets.jobs, decision)
    for job_id in purged:
        spool.remove_job(job_id)
        out(f"purged {job_id}")
    out(f"purged {len(purged)} job(s) ({targets.subject}); audited as {decision.operator}")
    return 0


# -- audit ---------------------------------------------------------------------------------
AUDIT_HEADER = "at\twho\tos_user\tnode\taction\tsubject\toutcome\trules\tnote\tjobs"


def _tsv(text: str) -> str:
    return _CONTROL.sub(" ", text)


def audit_lines(engine: Engine, limit: int) -> list[str]:
    """The newest ``limit`` audited decisions, oldest first: releases and purges of quarantined
    jobs, re-identifications and map exports (gateway.pseudonyms.reidentify)."""
    from gateway.pseudonyms.reidentify import audit_entries

    rows: list[tuple[dt.datetime, int, str]] = []
    for e in decisions.entries(engine, limit):
        d = e.decision
        past = "released" if d.action == "release" else f"{d.action}d"
        fields = (d.operator, d.os_user, e.node_id, d.action, d.subject,
                  f"{past} {len(e.job_ids)}", _rules_text(d), d.note, " ".join(e.job_ids))
        rows.append((e.at, 1, "\t".join([f"{e.at:%Y-%m-%dT%H:%M:%S}Z",
                                         *(_tsv(f) for f in fields)])))
    for r in audit_entries(engine, limit):
        fields = (r.os_user, r.os_user, r.node_id, r.action, r.subject, r.outcome, "", r.reason,
                  "")
        rows.append((r.at, 0, "\t".join([f"{r.at:%Y-%m-%dT%H:%M:%S}Z",
                                         *(_tsv(f) for f in fields)])))
    rows.sort(key=lambda row: (row[0], row[1]))
    return [line for _, _, line in rows[-limit:]] if limit > 0 else []


def cmd_audit_list(args: argparse.Namespace, settings: Settings, out: Out = print) -> int:
    store, _ = _open(settings)
    out(AUDIT_HEADER)
    for line in audit_lines(store.engine, args.limit):
        out(line)
    return 0


# -- parser --------------------------------------------------------------------------------
def _selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("jobs", nargs="*", help="job ids (or unambiguous prefixes)")
    p.add_argument("--group", metavar="ID", help="every job of this quarantine group")
    p.add_argument("--all", action="store_true", help="every quarantined job")
    p.add_argument("--reason-class", help="with --all: only this reason class")
    p.add_argument("--operator", metavar="NAME",
                   help="who decides (recorded in the audit; default: the login name)")
    p.add_argument("--note", metavar="TEXT", default="",
                   help="why (recorded in the audit; never a patient value)")


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub.add_parser("status", help="counts of jobs per state and per destination")
    add_config(p)
    p.set_defaults(handler=cmd_status)

    q = sub.add_parser("quarantine", help="inspect and release held instances")
    qsub = q.add_subparsers(dest="quarantine_command", required=True)
    p = qsub.add_parser("list", help="quarantined jobs by group (reason class, stage, reason "
                        "and attribute paths), newest group first")
    add_config(p)
    p.add_argument("--jobs", action="store_true", help="list jobs instead of groups")
    p.add_argument("--group", metavar="ID", help="list the jobs of this group")
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(handler=cmd_list)
    p = qsub.add_parser("show", help="details of one job, or of one group with its history")
    add_config(p)
    p.add_argument("job", nargs="?", help="job id (or an unambiguous prefix)")
    p.add_argument("--group", metavar="ID", help="show this group instead of a job")
    p.set_defaults(handler=cmd_show)

    p = qsub.add_parser("release", help="process quarantined jobs again from their original "
                        "bytes, optionally with another profile or a site override (audited)")
    add_config(p)
    _selection(p)
    p.add_argument("--profile", metavar="NAME_OR_PATH",
                   help="de-identify these jobs with this profile instead of the configured one")
    p.add_argument("--override", metavar="FILE", type=Path,
                   help="a site override file (profile overrides) applied on top of the profile")
    p.set_defaults(handler=cmd_release)

    p = qsub.add_parser("purge", help="delete quarantined jobs and their files (audited)")
    add_config(p)
    _selection(p)
    p.add_argument("--yes", action="store_true", help="really delete")
    p.set_defaults(handler=cmd_purge)


def register_audit_list(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit list`` (every operator decision) to the ``audit`` command, which on its own
    keeps listing re-identification requests and map exports as it always did."""
    audit = sub.choices["audit"]
    asub = audit.add_subparsers(dest="audit_command", required=False)
    p = asub.add_parser("list", help="every audited operator decision: releases, purges, "
                        "re-identifications, map exports")
    # SUPPRESS: `audit -c FILE list` keeps the FILE given before the sub-command
    p.add_argument("-c", "--config", type=Path, default=argparse.SUPPRESS,
                   help="gateway YAML file")
    p.add_argument("--limit", type=int, default=100, help="newest N entries (default 100)")
    p.set_defaults(handler=cmd_audit_list)
