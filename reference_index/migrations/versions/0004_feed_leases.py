"""feed leases: each live feed followed by exactly one ingester among many

Revision ID: 0004
Revises: 0003

``feed_leases`` holds, per feed, the ingester process that follows it and until when; a
holder renews its leases every third of the lease period and a lease that ran out may be
taken over (``takeovers``, ``previous_holder`` and ``blind_since_utc`` record the hand-over
and the start of the gap it left). ``ingesters`` holds a heartbeat per ingester process so
that feeds can be shared out evenly. Portable types and named constraints only, as in 0002
and 0003, so the revision runs on SQLite and PostgreSQL alike.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_leases",
        sa.Column("feed_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("takeovers", sa.Integer, nullable=False, server_default="0"),
        sa.Column("previous_holder", sa.String(255), nullable=True),
        sa.Column("blind_since_utc", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["feed_id"],
            ["reference_feeds.id"],
            name="fk_feed_leases_feed_id_reference_feeds",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "ingesters",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("until_utc", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingesters")
    op.drop_table("feed_leases")
