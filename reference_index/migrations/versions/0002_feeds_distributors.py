"""reference feeds, VOD assets and authorized distributors

Revision ID: 0002
Revises: 0001

Three tables hanging off ``channels`` (deleting a channel deletes its rows: ``ON DELETE
CASCADE``, which SQLite enforces because the catalog turns ``PRAGMA foreign_keys`` on).
Only ``create_table``/``create_index`` with portable types, so the same revision runs on
SQLite and PostgreSQL; constraints are named so that later batch migrations on SQLite can
find them. ``sqlite_autoincrement`` keeps SQLite from reusing the id of a deleted row
(feed and distributor ids end up in reports).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _channel_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["channel_id"],
        ["channels.id"],
        name=f"fk_{table}_channel_id_channels",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "reference_feeds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("retention_hours", sa.Float, nullable=False, server_default=sa.text("48")),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _channel_fk("reference_feeds"),
        sa.UniqueConstraint("channel_id", "url", name="uq_reference_feeds_channel_id_url"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_reference_feeds_channel_id", "reference_feeds", ["channel_id"])

    op.create_table(
        "vod_assets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _channel_fk("vod_assets"),
        sa.UniqueConstraint("channel_id", "source", name="uq_vod_assets_channel_id_source"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_vod_assets_channel_id", "vod_assets", ["channel_id"])

    op.create_table(
        "authorized_distributors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel_id", sa.String(64), nullable=False),
        sa.Column("licensee", sa.String(200), nullable=False),
        sa.Column("territory", sa.String(100), nullable=True),
        sa.Column("host_pattern", sa.String(255), nullable=True),
        sa.Column("cidr", sa.String(64), nullable=True),
        sa.Column("asn", sa.BigInteger, nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _channel_fk("authorized_distributors"),
        sa.CheckConstraint(
            "host_pattern IS NOT NULL OR cidr IS NOT NULL OR asn IS NOT NULL",
            name="ck_authorized_distributors_criterion",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_authorized_distributors_channel_id", "authorized_distributors", ["channel_id"]
    )


def downgrade() -> None:
    op.drop_table("authorized_distributors")
    op.drop_table("vod_assets")
    op.drop_table("reference_feeds")
