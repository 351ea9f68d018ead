"""Alembic environment: runs migrations on the engine Clipper hands over."""

from alembic import context

from clipper.storage.tables import Base

engine = context.config.attributes["engine"]


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001 - alembic's hook
    """Leave the search index (FTS5 tables, tsvector column) out of autogenerate: 0002 owns it."""
    return not (name or "").startswith(("segments_fts", "ix_segments_tsv")) and name != "tsv"


with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
