"""The site secret never appears in logs (gateway or SQL echo), command output, exception
messages or the database, whatever the store and the commands do."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
import yaml
from pseudonym_support import synthetic_patient, synthetic_uid
from sqlalchemy import create_engine, inspect, select
from structlog.testing import capture_logs

from gateway.cli import main
from gateway.config import Settings, load_settings
from gateway.pseudonyms.factory import open_pseudonymizer
from gateway.pseudonyms.secret import SecretError, load_secret, parse_secret
from gateway.pseudonyms.store import PseudonymConflict


def _forms(secret: bytes) -> list[bytes]:
    """Every encoding in which the secret could leak."""
    return [secret, secret.hex().encode(), secret.hex().upper().encode(),
            base64.b64encode(secret), base64.b32encode(secret), repr(secret).encode()]


def _dump_database(url: str) -> bytes:
    engine = create_engine(url)
    chunks: list[bytes] = []
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                rows = conn.exec_driver_sql(f'SELECT * FROM "{table}"').all()
                chunks.append(repr(rows).encode())
    finally:
        engine.dispose()
    return b"\n".join(chunks)


def _sqlite_files(url: str) -> bytes:
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def _scenario(config: Path, tmp_path: Path, errors: list[str]) -> None:
    settings = load_settings(config)
    with open_pseudonymizer(settings) as s:
        for i in range(20):
            s.uid(synthetic_uid(i))
            s.patient(*synthetic_patient(i))
            s.identifier("accession", f"ACC{i}")
        s.flush()
        pseudonym = s.uid(synthetic_uid(0))
    table = tmp_path / "lookup.csv"
    table.write_text("LOOKUPMRN,S1,A^B\n")
    for argv in (["keys", "check"], ["lookup", "import", str(table)],
                 ["reidentify", pseudonym, "--reason", "leak test"], ["audit"],
                 ["map", "export", str(tmp_path / "export")]):
        main([*argv, "-c", str(config)])
    other = tmp_path / "other.key"
    main(["keys", "init", "--path", str(other)])
    main(["keys", "init", "--path", str(other)])  # refused: names the file only
    wrong = settings.model_copy(update={"pseudonyms": settings.pseudonyms.model_copy(
        update={"secret_file": other})})
    with pytest.raises(PseudonymConflict) as info:
        open_pseudonymizer(wrong)
    errors.append(str(info.value))
    with pytest.raises(SecretError) as info2:
        parse_secret(load_secret(settings).hex()[:40], "truncated copy")
    errors.append(str(info2.value))


def test_secret_never_leaks(tmp_path: Path, db_url: str, secret_file: Path,
                            caplog: pytest.LogCaptureFixture,
                            capsys: pytest.CaptureFixture[str]) -> None:
    """Through a full run (with SQL echo on), no form of the secret is in any log record,
    any printed line, any error message, any exported file or any database row."""
    config = tmp_path / "g.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": db_url, "echo": True},
        "pseudonyms": {"secret_file": str(secret_file), "reidentification_enabled": True}}))
    secret = bytes.fromhex(secret_file.read_text().strip())
    errors: list[str] = []
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        _scenario(config, tmp_path, errors)
    captured = capsys.readouterr()
    exported = b"".join(p.read_bytes() for p in (tmp_path / "export").iterdir())
    haystacks = {
        "structlog": repr(logs).encode(),
        "logging": "\n".join(r.getMessage() + repr(r.args) for r in caplog.records).encode(),
        "stdout/stderr": (captured.out + captured.err).encode(),
        "errors": "\n".join(errors).encode(),
        "export": exported,
        "database rows": _dump_database(db_url),
    }
    if db_url.startswith("sqlite"):
        haystacks["database files"] = _sqlite_files(db_url)
    assert len(caplog.records) > 10  # SQL echo did log statements
    for where, text in haystacks.items():
        for form in _forms(secret):
            assert form not in text, f"secret found in {where}"


def test_config_dump_has_no_secret(tmp_path: Path, db_url: str, secret_file: Path) -> None:
    """The settings object names where the secret is, never the secret itself."""
    settings = load_settings(None).model_copy(
        update={"pseudonyms": load_settings(None).pseudonyms.model_copy(
            update={"secret_file": secret_file})})
    secret = load_secret(settings)
    dumped = settings.model_dump_json().encode()
    assert all(form not in dumped for form in _forms(secret))


def test_database_holds_no_secret_column(settings: Settings, db_url: str) -> None:
    """No table of the schema has a column meant for the secret."""
    open_pseudonymizer(settings).close()
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            names = {c["name"] for t in inspect(conn).get_table_names()
                     for c in inspect(conn).get_columns(t)}
            assert conn.execute(select(1)).scalar_one() == 1
    finally:
        engine.dispose()
    assert not {n for n in names if "secret" in n or "key" in n} - {"patient_key"}
