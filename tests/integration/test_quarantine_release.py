"""End to end: a site rule mistake holds instances, an operator releases their group with a
site override, and they reach the research PACS de-identified, audited under the operator's
name. storescu -> gateway (subprocess) -> Orthanc, with the CLI as a subprocess."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

import dicomgen
from harness import destination, gateway, orthanc, storescu, wait_for
from quarantine_support import (
    CLEAN_CODE_MEANINGS,
    LEAK_PATH,
    SITE_PROFILE,
    named_procedure_ct,
    phi,
    write,
)

pytestmark = pytest.mark.integration


def test_release_group_with_override_reaches_the_pacs(tmp_path: Path) -> None:
    """Held for a name in a procedure code meaning, the group released with an override that
    removes those code meanings arrives without them or any planted value; `audit list` shows
    the release with the operator and the override's sha256."""
    src = tmp_path / "in"
    held = [named_procedure_ct(i, items=1 + i) for i in range(2)]
    clean = dicomgen.ct(dicomgen.Study.random(random.Random(9)), generate_uid(), 1)
    for i, ds in enumerate([*held, clean]):
        dicomgen.save(ds, src / f"{i}.dcm")
    values = [v for ds in [*held, clean] for v in phi(ds)]
    profile = write(tmp_path / "rules", "site.yaml", SITE_PROFILE)
    override = write(tmp_path / "ops", "clean-code-meanings.yaml", CLEAN_CODE_MEANINGS)
    sha = hashlib.sha256(CLEAN_CODE_MEANINGS.encode()).hexdigest()
    cfg = {"deid": {"profile": str(profile)},
           "pipeline": {"stages": ["filter", "deidentify", "verify"]}}
    with orthanc(tmp_path / "orthanc") as o:
        cfg["destinations"] = [destination(o)]
        with gateway(tmp_path / "gw", cfg) as g:
            storescu(g.port, [src])
            wait_for(lambda: g.status().get("sent") == 1 and g.status().get("quarantined") == 2,
                     120, 0.5, "one sent, two held")
            listing = g.cli("quarantine", "list").stdout
            [line] = [ln for ln in listing.splitlines() if LEAK_PATH in ln]
            group_id, count = line.split()[:2]
            assert count == "2" and "[0]" not in listing
            released = g.cli("quarantine", "release", "--group", group_id, "--override",
                             str(override), "--operator", "alice", "--note", "names in codes")
            assert f"released 2 job(s) (group {group_id})" in released.stdout
            override.unlink()  # the operator's file may go: its text is in the database
            wait_for(lambda: g.status().get("sent") == 3, 120, 0.5, "released group sent")
            audit = g.cli("audit", "list").stdout.splitlines()
            cols = audit[-1].split("\t")
            assert cols[1] == "alice" and cols[4:7] == ["release", f"group {group_id}",
                                                        "released 2"]
            assert cols[7] == f"override clean-code-meanings sha256:{sha}"
            job_id = cols[9].split()[0]
            shown = g.cli("quarantine", "show", job_id).stdout
            assert "state:          sent" in shown and "+site+clean-code-meanings@" in shown
            assert "release by alice" in shown
            outputs = "".join(g.cli(*c).stdout for c in (
                ("quarantine", "list"), ("quarantine", "show", "--group", group_id)))
            log = g.log()
        assert o.count_instances() == 3
        stored = [p for p in (tmp_path / "orthanc" / "storage").rglob("*") if p.is_file()]
        blob = b"".join(p.read_bytes() for p in stored)
        assert [v for v in values if v.encode() in blob] == []
        codes = [dcmread(p).get("ProcedureCodeSequence") for p in stored]
        assert sorted(len(c) for c in codes if c) == [1, 2]
        assert all("CodeMeaning" not in item for c in codes if c for item in c)
        for value in values:
            assert value not in listing + released.stdout + "\n".join(audit) + shown + outputs
            assert value not in log
