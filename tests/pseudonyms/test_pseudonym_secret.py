"""The site secret: created once with mode 0600, read from a file or a named variable, and
missing or malformed secrets are errors that say what to do without showing any secret."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.config import ConfigError, PseudonymSettings, Settings, parse_settings
from gateway.pseudonyms.secret import (
    SecretError,
    encode_secret,
    ensure_secret,
    init_secret_file,
    load_secret,
    parse_secret,
)


def _settings(**pseudonyms: object) -> Settings:
    return parse_settings({"pseudonyms": pseudonyms})


def test_init_creates_private_hex_file(tmp_path: Path) -> None:
    """`keys init` writes 32 random bytes as hex into a new file of mode 0600."""
    path = tmp_path / "keys" / "site.key"
    init_secret_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert len(text.strip()) == 64
    assert len(bytes.fromhex(text.strip())) == 32
    assert [p.name for p in path.parent.iterdir()] == ["site.key"]  # no temporary left


def test_init_twice_gives_different_secrets(tmp_path: Path) -> None:
    """Two initialisations draw independent random secrets."""
    init_secret_file(tmp_path / "a")
    init_secret_file(tmp_path / "b")
    assert (tmp_path / "a").read_text() != (tmp_path / "b").read_text()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    """An existing secret file is never replaced, and the refusal says why."""
    path = tmp_path / "site.key"
    init_secret_file(path)
    before = path.read_bytes()
    with pytest.raises(SecretError, match="refusing to replace") as info:
        init_secret_file(path)
    assert path.read_bytes() == before
    assert before.decode().strip() not in str(info.value)


def test_load_from_configured_file(tmp_path: Path) -> None:
    """A configured secret_file is read and decoded."""
    path = tmp_path / "site.key"
    init_secret_file(path)
    secret = load_secret(_settings(secret_file=str(path)))
    assert secret == bytes.fromhex(path.read_text().strip())


def test_load_from_named_environment_variable() -> None:
    """With secret_env, the secret is the hex value of that variable."""
    secret = os.urandom(32)
    s = _settings(secret_env="SITE_SECRET")
    assert load_secret(s, {"SITE_SECRET": encode_secret(secret)}) == secret


def test_missing_variable_names_it_and_says_how() -> None:
    """An unset secret variable is an error naming the variable and `keys init`."""
    with pytest.raises(SecretError, match=r"SITE_SECRET.*not set.*keys init"):
        load_secret(_settings(secret_env="SITE_SECRET"), {})


def test_missing_file_says_how_to_create(tmp_path: Path) -> None:
    """A missing secret file is an error that names the path and `deid-gateway keys init`."""
    path = tmp_path / "nope.key"
    with pytest.raises(SecretError, match=r"no site secret at .*nope\.key.*deid-gateway keys init"):
        load_secret(_settings(secret_file=str(path)))


@pytest.mark.parametrize("text", ["too-short", "ab" * 16, "zz" * 40, ""])
def test_malformed_secret_refused_without_echo(text: str) -> None:
    """A value that is not hex of at least 32 bytes is refused; the message omits it."""
    with pytest.raises(SecretError, match="at least 32 bytes") as info:
        parse_secret(text, "environment variable X")
    if text:
        assert text not in str(info.value)


def test_long_secret_accepted() -> None:
    """Secrets longer than 32 bytes (hex) are accepted as they are."""
    raw = os.urandom(48)
    assert parse_secret(raw.hex() + "\n", "x") == raw


def test_ensure_creates_default_on_first_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no source configured, serve's first start creates the default file and logs it
    without the secret; the second start reads the same secret."""
    monkeypatch.chdir(tmp_path)
    with capture_logs() as logs:
        first = ensure_secret(Settings())
    path = tmp_path / PseudonymSettings.DEFAULT_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any("created" in e["event"] for e in logs)
    assert first.hex() not in repr(logs)
    assert ensure_secret(Settings()) == first


def test_ensure_never_creates_a_configured_file(tmp_path: Path) -> None:
    """A configured but missing secret_file is an error; nothing is created."""
    path = tmp_path / "configured.key"
    with pytest.raises(SecretError, match="keys init"):
        ensure_secret(_settings(secret_file=str(path)))
    assert not path.exists()


def test_ensure_never_creates_when_env_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured but unset secret_env is an error; no default file is created."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SecretError, match="MISSING_VAR"):
        ensure_secret(_settings(secret_env="MISSING_VAR"), {})
    assert not (tmp_path / PseudonymSettings.DEFAULT_SECRET_FILE).exists()


def test_load_never_creates_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_secret (used by workers and commands) does not create the default file."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SecretError, match="keys init"):
        load_secret(Settings())
    assert not (tmp_path / "var").exists()


def test_concurrent_first_starts_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several threads starting at once end up with one and the same secret."""
    monkeypatch.chdir(tmp_path)
    results: list[bytes] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(ensure_secret(Settings()))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 8 and len(set(results)) == 1


def test_readable_secret_file_warns(tmp_path: Path) -> None:
    """A secret file readable by others still loads but logs a warning (no secret in it)."""
    path = tmp_path / "site.key"
    init_secret_file(path)
    path.chmod(0o644)
    with capture_logs() as logs:
        secret = load_secret(_settings(secret_file=str(path)))
    assert [e["log_level"] for e in logs] == ["warning"]
    assert secret.hex() not in repr(logs)


@pytest.mark.parametrize(
    ("section", "match"),
    [
        ({"secret_env": "A", "secret_file": "/x"}, "either secret_env or secret_file"),
        ({"date_offset_min_days": 0, "date_offset_max_days": 0}, "other than 0"),
        ({"date_offset_min_days": 10, "date_offset_max_days": -10}, "must not exceed"),
        ({"lookup_policy": "drop"}, r"pseudonyms\.lookup_policy"),
        ({"secret_env": "1BAD"}, r"pseudonyms\.secret_env"),
    ],
)
def test_bad_pseudonym_settings_are_named(section: dict[str, object], match: str) -> None:
    """Invalid pseudonym settings are rejected with a message naming the problem."""
    with pytest.raises(ConfigError, match=match):
        parse_settings({"pseudonyms": section})


def test_default_pseudonym_settings() -> None:
    """Defaults: generate missing patients, offsets within -3650..-30, re-identification off."""
    p = Settings().pseudonyms
    assert p.lookup_policy == "generate"
    assert (p.date_offset_min_days, p.date_offset_max_days) == (-3650, -30)
    assert p.reidentification_enabled is False
    assert p.secret_path == PseudonymSettings.DEFAULT_SECRET_FILE
