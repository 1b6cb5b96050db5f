"""runs.materialised_at: when a run's message rows were all written (the fan-out streams them); an index
on a campaign's listed contacts in order (the details and the fan-out read them by position)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("materialised_at", sa.DateTime(timezone=True), nullable=True))
    # Runs that started before this revision wrote their rows in one transaction: they are complete.
    op.execute("UPDATE runs SET materialised_at = started_at WHERE started_at IS NOT NULL")
    op.create_index("ix_campaign_contacts_position", "campaign_contacts", ["campaign_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_campaign_contacts_position", table_name="campaign_contacts")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("materialised_at")
