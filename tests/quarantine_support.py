"""A site that writes the patient's name into Procedure Code Sequence code meanings, built in
code: the profile that keeps them (so verify holds the instances), the site override that
removes them (so a release with it gets them through), and a synthetic instance."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import yaml
from pydicom import Dataset
from pydicom.uid import generate_uid

from gateway.config import Settings, parse_settings
from gateway.db import make_engine, upgrade
from gateway.jobs import decisions
from gateway.jobs.decisions import Decision
from gateway.jobs.models import utcnow
from gateway.jobs.store import JobStore, NewJob
from gateway.pipeline.compose import ReleasePipelines, build_pipeline
from gateway.pipeline.stage import RulesText, StageServices
from gateway.pipeline.worker import JobRunner
from gateway.pseudonyms.interface import InMemoryPseudonymizer
from gateway.spool import Spool

import dicomgen

LEAK_PATH = "(0008,1032)>(0008,0104)"

# The site's profile: the Basic Profile, keeping procedure and anatomic region code meanings
# as written (the rule mistake: the cleaner obeys an override that keeps, and verify holds).
SITE_PROFILE = """\
name: site
description: Basic Profile; this site keeps procedure code meanings
overrides:
  - path: ProcedureCodeSequence > CodeMeaning
    action: K
    reason: procedure names are curated here
  - path: AnatomicRegionSequence > CodeMeaning
    action: K
    reason: anatomy names are curated here
"""

# The override an operator releases the held instances with.
CLEAN_CODE_MEANINGS = """\
name: clean-code-meanings
description: this site writes names into procedure code meanings
overrides:
  - path: ProcedureCodeSequence > CodeMeaning
    action: X
    reason: remove the code meanings that carry names
"""


class World:
    """A worker (in this process), its store and spool, with the site profile configured; the
    same settings are written to ``config`` for the command line."""

    def __init__(self, tmp_path: Path, cache_size: int = 8) -> None:
        profile = write(tmp_path / "rules", "site.yaml", SITE_PROFILE)
        raw: dict[str, Any] = {
            "spool": {"root": str(tmp_path / "spool")},
            "database": {"url": f"sqlite:///{tmp_path / 'g.db'}"},
            "pipeline": {"stages": ["deidentify", "verify"]},
            "deid": {"profile": str(profile)},
            "node_id": "node-test",
        }
        self.config = write(tmp_path, "gateway.yaml", yaml.safe_dump(raw))
        self.settings: Settings = parse_settings(raw)
        self.spool = Spool(self.settings.spool.root)
        self.spool.create()
        engine = make_engine(self.settings.database.url)
        upgrade(engine)
        self.store = JobStore(engine, self.settings.node_id)
        services = StageServices(settings=self.settings, pseudonymizer=InMemoryPseudonymizer())
        stages = build_pipeline(self.settings.pipeline.stages, services)
        self.loads: list[str] = []
        self.release = ReleasePipelines(stages, services, self._load, size=cache_size)
        self.runner = JobRunner(self.settings, self.store, self.spool, stages, "w",
                                release=self.release)

    def _load(self, sha256: str) -> RulesText | None:
        self.loads.append(sha256)
        return decisions.load_rules(self.store.engine, sha256)

    def receive(self, ds: Dataset, job_id: str) -> None:
        dicomgen.save(ds, self.spool.incoming_path(job_id))
        self.store.add_received(NewJob(job_id, "MOD", "GW", ds.SOPClassUID,
                                       "1.2.840.10008.1.2.1", ds.Modality, 100))

    def run(self) -> None:
        while jobs := self.store.claim("w", 10, 60):
            self.runner.run_batch(jobs)

    def rules(self, name: str, text: str) -> RulesText:
        rules = RulesText(hashlib.sha256(text.encode()).hexdigest(), name, text)
        decisions.save_rules(self.store.engine, rules, utcnow())
        return rules

    def release_jobs(self, job_ids: list[str], override: RulesText | None = None,
                     profile: RulesText | None = None) -> list[str]:
        for job_id in job_ids:
            self.spool.from_quarantine(job_id)
        decision = Decision(
            "release", "tester", "tester", "jobs",
            profile=profile.name if profile else None,
            profile_sha256=profile.sha256 if profile else None,
            override=override.name if override else None,
            override_sha256=override.sha256 if override else None)
        return self.store.release_jobs(job_ids, decision)

    def state(self, job_id: str) -> str:
        info = self.store.get(job_id)
        assert info is not None
        return info.state


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def named_procedure_ct(seed: int, items: int = 1) -> Dataset:
    """A CT whose Procedure Code Sequence items name the (synthetic) patient."""
    study = dicomgen.Study.random(random.Random(seed))
    ds = dicomgen.ct(study, generate_uid(), 1)
    codes = []
    for i in range(items):
        code = Dataset()
        code.CodeValue = f"P{i}"
        code.CodingSchemeDesignator = "99SITE"
        code.CodeMeaning = f"CT chest {ds.PatientName.family_name}"
        codes.append(code)
    ds.ProcedureCodeSequence = codes
    return ds


def phi(ds: Dataset) -> list[str]:
    """The identifying values that must never appear in output, logs, reasons or the audit."""
    return [str(ds.PatientName.family_name), str(ds.PatientID), str(ds.AccessionNumber),
            str(ds.SOPInstanceUID)]
