"""End to end with de-identification: storescu -> gateway (research profile) -> Orthanc.

Checks what a research team cares about: nothing identifying arrives, studies stay together
under consistent pseudonyms, and what a filter holds is in quarantine for an operator.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from pydicom import dcmread

import dicomgen
from harness import destination, gateway, orthanc, storescu, wait_for

pytestmark = pytest.mark.integration


def _identifying(files: list[Path]) -> set[bytes]:
    """Every planted identifying value of the inputs, as bytes to look for."""
    values: set[bytes] = set()
    for p in files:
        ds = dcmread(p, stop_before_pixels=True)
        # (StationName is device identity, which the research profile retains on purpose)
        for kw in ("PatientID", "AccessionNumber", "SOPInstanceUID", "StudyInstanceUID",
                   "SeriesInstanceUID", "InstitutionName", "ReferringPhysicianName"):
            v = str(ds.get(kw, ""))
            if v:
                values.add(v.encode())
        family = str(ds.PatientName).split("^")[0]
        values.add(family.encode())
    return values


def test_research_profile_end_to_end(tmp_path: Path) -> None:
    """No planted value reaches the PACS; a study keeps one pseudonymous Study UID; SC held."""
    src = tmp_path / "in"
    files = [p for p, _ts in dicomgen.mixed_set(src, 60)]
    by_kind = defaultdict(list)
    for p in files:
        by_kind[dcmread(p, stop_before_pixels=True).Modality].append(p)
    cfg = {
        "deid": {"profile": "research"},
        "filters": {"rules": [{"name": "hold-secondary-capture", "action": "quarantine",
                               "modality": ["OT"]}]},
    }
    with orthanc(tmp_path / "orthanc") as o:
        cfg["destinations"] = [destination(o)]
        with gateway(tmp_path / "gw", cfg) as g:
            storescu(g.port, [src])
            expected = len(files) - len(by_kind["OT"])
            wait_for(lambda: g.status().get("sent") == expected, 180, 0.5, "all sent")
            st = g.status()
            assert st["quarantined"] == len(by_kind["OT"])

            listing = g.cli("quarantine", "list", "--jobs").stdout
            assert listing.count("hold-secondary-capture") == len(by_kind["OT"])
            job_id = listing.splitlines()[1].split()[0]
            shown = g.cli("quarantine", "show", job_id[:12]).stdout
            assert "quarantined" in shown and "original file:" in shown
            # release: processed again from the original bytes, and held again by the rule
            g.cli("quarantine", "release", job_id)
            wait_for(lambda: g.cli("quarantine", "show", job_id).stdout.count("attempts:       1")
                     == 1 and "quarantined" in g.cli("quarantine", "show", job_id).stdout,
                     60, 0.5, "released job processed again")
            assert g.cli("quarantine", "purge", job_id, check=False).returncode == 1  # no --yes
            g.cli("quarantine", "purge", job_id, "--yes")
            assert g.status()["quarantined"] == len(by_kind["OT"]) - 1

        # at the PACS: everything but the secondary captures, de-identified
        assert o.count_instances() == expected
        stored = [p for p in (tmp_path / "orthanc" / "storage").rglob("*") if p.is_file()]
        blob = b"".join(p.read_bytes() for p in stored)
        leaks = [v for v in _identifying(files) if v in blob]
        assert leaks == []
        studies: dict[str, set[str]] = defaultdict(set)
        for p in stored:
            ds = dcmread(p, stop_before_pixels=True)
            assert ds.PatientIdentityRemoved == "YES"
            assert ds.StudyInstanceUID.startswith("2.25.")
            studies[str(ds.PatientID)].add(str(ds.StudyInstanceUID))
        # the generator makes a new study (and patient) every 50 instances
        originals: dict[str, set[str]] = defaultdict(set)
        for p in files:
            ds = dcmread(p, stop_before_pixels=True)
            if ds.Modality != "OT":
                originals[str(ds.PatientID)].add(str(ds.StudyInstanceUID))
        assert sorted(len(v) for v in studies.values()) == sorted(
            len(v) for v in originals.values())
