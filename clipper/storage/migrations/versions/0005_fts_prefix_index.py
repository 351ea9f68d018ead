"""SQLite: FTS5 prefix indexes for 1-, 2- and 3-letter prefixes.

Why: without them a short prefix ("th*", "b*") merges the doclists of every word it starts,
"the" included: 180-560 ms in a million segments. With them any prefix search takes about what
a word does (~10 ms); longer prefixes start few enough words to merge. The index grows about
threefold (60 to 180 MB per million segments). PostgreSQL's GIN handles prefixes itself.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_CREATE = """CREATE VIRTUAL TABLE segments_fts USING fts5(
    text, content='segments', content_rowid='id',
    tokenize='unicode61 remove_diacritics 0'{prefix})"""


def _recreate(prefix: str) -> None:
    # The triggers name the table, not its definition: they keep working across the swap.
    op.execute("DROP TABLE segments_fts")
    op.execute(_CREATE.format(prefix=prefix))
    op.execute("INSERT INTO segments_fts(segments_fts) VALUES ('rebuild')")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate(", prefix='1 2 3'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _recreate("")
