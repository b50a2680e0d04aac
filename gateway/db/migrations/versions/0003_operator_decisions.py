"""Quarantine groups, release with a profile or site override, and the operator audit.

Jobs get the stage and the tag paths of their quarantine reason, and the rules an operator
released them with; ``release_rules`` keeps those rules' text by sha256; ``operator_audit`` (and
its job links) records every release and purge. ``jobs.ruleset`` grows to 255 characters on
PostgreSQL (SQLite does not enforce a VARCHAR length, and widening it there would copy the
whole table).

Revision ID: 0003_operator_decisions
Revises: 0002_pseudonyms
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_operator_decisions"
down_revision = "0002_pseudonyms"
branch_labels = None
depends_on = None

_JOB_COLUMNS = ("reason_stage", "reason_paths", "release_profile", "release_override")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("reason_stage", sa.String(32), nullable=True))
    op.add_column("jobs", sa.Column("reason_paths", sa.Text, nullable=True))
    op.add_column("jobs", sa.Column("release_profile", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("release_override", sa.String(64), nullable=True))
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("jobs", "ruleset", type_=sa.String(255),
                        existing_type=sa.String(128), existing_nullable=True)
    op.create_table(
        "release_rules",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "operator_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("os_user", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("job_count", sa.Integer, nullable=False),
        sa.Column("profile", sa.String(255), nullable=True),
        sa.Column("profile_sha256", sa.String(64), nullable=True),
        sa.Column("override", sa.String(255), nullable=True),
        sa.Column("override_sha256", sa.String(64), nullable=True),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index("ix_operator_audit_at", "operator_audit", ["at"])
    op.create_table(
        "operator_audit_jobs",
        sa.Column(
            "audit_id",
            sa.Integer,
            sa.ForeignKey("operator_audit.id", ondelete="CASCADE",
                          name="fk_operator_audit_jobs_audit_id_operator_audit"),
            primary_key=True,
        ),
        sa.Column("job_id", sa.String(32), primary_key=True),
    )
    op.create_index("ix_operator_audit_jobs_job_id", "operator_audit_jobs", ["job_id"])


def downgrade() -> None:
    op.drop_table("operator_audit_jobs")
    op.drop_table("operator_audit")
    op.drop_table("release_rules")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("jobs", "ruleset", type_=sa.String(128),
                        existing_type=sa.String(255), existing_nullable=True)
    with op.batch_alter_table("jobs") as batch:
        for name in _JOB_COLUMNS:
            batch.drop_column(name)
