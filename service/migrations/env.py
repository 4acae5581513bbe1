"""Alembic environment of the service tables; the connection comes from service.db.migrate()."""

from alembic import context

from service.models import ServiceBase

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=ServiceBase.metadata,
    version_table="alembic_version_service",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
