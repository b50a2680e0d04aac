"""A wheel (non-editable install) carries the rule tables, profiles and detector weights, and
the installed package finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(out), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )
    [whl] = out.glob("deid_gateway-*.whl")
    return whl


def test_wheel_ships_the_data_folders(wheel: Path) -> None:
    """Every file gateway.paths.shipped() is asked for is inside the wheel's data."""
    names = zipfile.ZipFile(wheel).namelist()
    data = "deid_gateway-0.1.0.data/data/share/deid-gateway/"
    for rel in ("rules/ps3.15/basic_profile.json", "rules/ps3.15/safe_private.json",
                "rules/ps3.3/iod_types.json", "rules/profiles/research.yaml",
                "models/textdet/textdet-v2.pt"):
        assert data + rel in names, rel


def test_installed_copy_is_found_when_no_checkout(tmp_path: Path, wheel: Path) -> None:
    """With the package unpacked away from the checkout, the rules come from <prefix>/share."""
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    prefix = tmp_path / "prefix"
    share = target / "deid_gateway-0.1.0.data" / "data" / "share"
    (prefix / "share").mkdir(parents=True)
    share.rename(prefix / "share")
    code = (
        "import sys; sys.prefix = sys.argv[1]; sys.path.insert(0, sys.argv[2]);"
        "import gateway.paths as p; print(p.shipped('rules'))"
    )
    run = subprocess.run([sys.executable, "-c", code, str(prefix), str(target)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()) == prefix / "share" / "deid-gateway" / "rules"
