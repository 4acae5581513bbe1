"""Alembic environment of the channel catalog; the connection comes from catalog.migrate()."""

from alembic import context

from reference_index.catalog import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table="alembic_version_catalog",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
