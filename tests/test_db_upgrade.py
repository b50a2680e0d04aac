"""Schema upgrades are atomic on SQLite, so that processes starting at once cannot apply a
migration twice."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event, text

from gateway.db import make_engine, upgrade
from gateway.db.engine import current_revision


def test_sqlite_upgrade_is_one_transaction(tmp_path: Path) -> None:
    """Every migration of a fresh SQLite database commits together, in one BEGIN IMMEDIATE
    transaction from reading the revision on (Alembic would commit each on its own there; a
    process that read the revision in between applied one twice: 'duplicate column')."""
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    commits: list[str] = []
    event.listen(engine, "commit", lambda conn: commits.append("commit"))
    upgrade(engine)
    assert commits == ["commit"]
    assert current_revision(engine) is not None
    with engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("select name from sqlite_master"))}
    assert {"jobs", "pseudonym_map", "operator_audit"} <= tables
    commits.clear()
    upgrade(engine)  # already current: nothing to do, one (empty) transaction
    assert commits == ["commit"]
    engine.dispose()
