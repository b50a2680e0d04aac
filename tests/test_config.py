"""Configuration: defaults work with no file; unknown keys and bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.config import ConfigError, Settings, load_settings, parse_settings


def test_defaults_forward_to_embedded_sink() -> None:
    """With no file, the gateway forwards to the embedded sink and starts it."""
    s = load_settings(None)
    assert s.sink_enabled
    assert len(s.destinations) == 1
    d = s.destinations[0]
    assert (d.ae_title, d.port) == (s.sink.ae_title, s.sink.port)
    assert s.database.url.startswith("sqlite:///")


def test_configured_destination_disables_sink() -> None:
    """A configured destination replaces the sink unless the sink is enabled explicitly."""
    dest = {"name": "pacs", "ae_title": "PACS", "host": "h", "port": 104}
    s = parse_settings({"destinations": [dest]})
    assert not s.sink_enabled
    assert [d.name for d in s.destinations] == ["pacs"]


def test_unknown_key_is_named() -> None:
    """An unknown nested key is rejected with its dotted path."""
    with pytest.raises(ConfigError, match=r"receiver\.portt: unknown key"):
        parse_settings({"receiver": {"portt": 1}})


def test_bad_value_is_named() -> None:
    """A value out of range is rejected with the key that holds it."""
    with pytest.raises(ConfigError, match=r"receiver\.port"):
        parse_settings({"receiver": {"port": 70000}})


def test_bad_ae_title_is_named() -> None:
    """AE titles longer than 16 characters are refused."""
    with pytest.raises(ConfigError, match=r"receiver\.ae_title"):
        parse_settings({"receiver": {"ae_title": "X" * 17}})


def test_duplicate_destination_names() -> None:
    """Two destinations with one name are refused."""
    d = {"name": "a", "ae_title": "A", "host": "h", "port": 104}
    with pytest.raises(ConfigError, match="unique"):
        parse_settings({"destinations": [d, d]})


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    """A YAML syntax error reports the file and line."""
    f = tmp_path / "g.yaml"
    f.write_text("receiver:\n  port: [1,\n")
    with pytest.raises(ConfigError, match="line"):
        load_settings(f)


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after loading."""
    s = Settings()
    with pytest.raises(ValidationError):
        s.receiver.port = 1  # type: ignore[misc]


def test_shipped_example_configuration_is_valid() -> None:
    """docs/gateway.example.yaml stays in step with the settings it documents."""
    s = load_settings(Path(__file__).parent.parent / "docs" / "gateway.example.yaml")
    assert s.deid.profile == "research"
    assert s.receiver.allowed_callers[0].host == "10.1.2.3"
    assert not s.sink_enabled


def test_unknown_stage_is_named() -> None:
    """A misspelt pipeline stage is refused at load time, with the known ones listed."""
    with pytest.raises(ConfigError, match=r"pipeline\.stages.*deidentfy"):
        parse_settings({"pipeline": {"stages": ["deidentfy"]}})


def test_destination_timeouts_default_and_probe_interval_is_bounded() -> None:
    """A destination's response timeout defaults to 30 s and its probe interval to 10 s; a
    probe interval over 15 s is refused with the key named."""
    dest = {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 104}
    [d] = parse_settings({"destinations": [dest]}).destinations
    assert (d.response_timeout_seconds, d.probe_interval_seconds) == (30.0, 10.0)
    assert d.response_timeout_seconds < d.network_timeout
    with pytest.raises(ConfigError, match=r"destinations\.0\.probe_interval_seconds"):
        parse_settings({"destinations": [{**dest, "probe_interval_seconds": 20}]})
