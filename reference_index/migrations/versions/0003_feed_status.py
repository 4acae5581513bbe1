"""feed status: health of each reference feed's live ingestion

Revision ID: 0003
Revises: 0002

One row per feed, upserted by the live ingester (``reference_index/live.py``) and read by
the API, the CLI and ``/metrics``. ``feed_id`` is the primary key and a foreign key to
``reference_feeds`` with ``ON DELETE CASCADE``: removing a feed (or its channel, which
cascades to the feed) removes its status, on SQLite too because the catalog turns
``PRAGMA foreign_keys`` on for every connection. Only ``create_table`` with portable types
and named constraints, as in 0002, so the revision runs on SQLite and PostgreSQL alike.
The allowed states are spelled out here, not imported: a migration must not change when
the application's constants do.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_status",
        sa.Column("feed_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ingester", sa.String(255), nullable=False),
        sa.Column("last_posting_utc", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lag_seconds", sa.Float, nullable=True),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("reconnects", sa.Integer, nullable=False),
        sa.Column("last_error_reason", sa.String(100), nullable=True),
        sa.Column("last_error_message", sa.Text, nullable=True),
        sa.Column("last_error_utc", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_utc", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["reference_feeds.id"],
            name="fk_feed_status_feed_id_reference_feeds",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "state IN ('starting', 'live', 'reconnecting', 'stopped')",
            name="ck_feed_status_state",
        ),
        sa.CheckConstraint(
            "chunks >= 0 AND errors >= 0 AND reconnects >= 0", name="ck_feed_status_counts"
        ),
    )


def downgrade() -> None:
    op.drop_table("feed_status")
