"""Pseudonym map, patient pseudonyms and the re-identification audit.

Revision ID: 0002_pseudonyms
Revises: 0001_jobs
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_pseudonyms"
down_revision = "0001_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pseudonym_map",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("original", sa.String(255), nullable=False),
        sa.Column("pseudonym", sa.String(255), nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.UniqueConstraint("kind", "original", name="uq_pseudonym_map_kind_original"),
        sa.UniqueConstraint("pseudonym", "kind", name="uq_pseudonym_map_pseudonym_kind"),
    )
    op.create_table(
        "pseudonym_patients",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("patient_key", sa.String(511), nullable=False),
        sa.Column("original_id", sa.String(255), nullable=False),
        sa.Column("original_issuer", sa.String(255), nullable=False),
        sa.Column("pseudonym_id", sa.String(64), nullable=False),
        sa.Column("pseudonym_name", sa.String(330), nullable=False),
        sa.Column("date_offset_days", sa.Integer, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.UniqueConstraint("patient_key", name="uq_pseudonym_patients_patient_key"),
        sa.UniqueConstraint("pseudonym_id", name="uq_pseudonym_patients_pseudonym_id"),
    )
    op.create_index(
        "ix_pseudonym_patients_pseudonym_name", "pseudonym_patients", ["pseudonym_name"]
    )
    op.create_table(
        "pseudonym_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("os_user", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_pseudonym_audit_at", "pseudonym_audit", ["at"])


def downgrade() -> None:
    op.drop_table("pseudonym_audit")
    op.drop_table("pseudonym_patients")
    op.drop_table("pseudonym_map")
