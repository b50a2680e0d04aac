"""Fixtures of the pseudonym-store tests: a database per test (SQLite file, or a schema of its
own in the PostgreSQL at 127.0.0.1:5432, dropped afterwards) and settings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pseudonym_support import pg_schema_url, settings_for

from gateway.config import Settings
from gateway.pseudonyms.secret import init_secret_file

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty gateway database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.key"
    init_secret_file(path)
    return path


@pytest.fixture
def settings(db_url: str, secret_file: Path) -> Settings:
    """Settings of one node using the test database and secret."""
    return settings_for(db_url, secret_file)
