"""Full-text index of transcript segments: SQLite FTS5 table + triggers, PostgreSQL tsvector + GIN.

Both split text into runs of letters/digits, lower-case them and do not stem, so the search
query parser (clipper/search/query.py) can build exact phrases. The database keeps the index
current by itself (triggers / a generated column) inside the transaction that writes segments.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SQLITE_UP = [
    # External content: the text lives once, in `segments`; rowid = segments.id.
    """CREATE VIRTUAL TABLE segments_fts USING fts5(
        text, content='segments', content_rowid='id',
        tokenize='unicode61 remove_diacritics 0')""",
    """CREATE TRIGGER segments_fts_ai AFTER INSERT ON segments BEGIN
        INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER segments_fts_ad AFTER DELETE ON segments BEGIN
        INSERT INTO segments_fts(segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER segments_fts_au AFTER UPDATE OF text ON segments BEGIN
        INSERT INTO segments_fts(segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    "INSERT INTO segments_fts(segments_fts) VALUES ('rebuild')",
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS segments_fts_au",
    "DROP TRIGGER IF EXISTS segments_fts_ad",
    "DROP TRIGGER IF EXISTS segments_fts_ai",
    "DROP TABLE IF EXISTS segments_fts",
]

POSTGRES_UP = [
    # A big table is rewritten here; more sort memory makes the GIN build several times faster.
    "SET LOCAL maintenance_work_mem = '256MB'",
    # Punctuation becomes a space first so tokens match FTS5's unicode61 split (no 'well-known'
    # or 'foo@bar.com' compound tokens); 'simple' lower-cases and neither stems nor drops words.
    """ALTER TABLE segments ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig, regexp_replace(text, '[^[:alnum:]]+', ' ', 'g'))
    ) STORED""",
    "CREATE INDEX ix_segments_tsv ON segments USING gin (tsv)",
    # Fresh statistics let the planner tell a rare word (use the GIN index) from a common one
    # (walk segments newest-first and stop at the candidate cap).
    "ANALYZE segments",
]

POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS ix_segments_tsv",
    "ALTER TABLE segments DROP COLUMN IF EXISTS tsv",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _run(SQLITE_UP)
    elif dialect == "postgresql":
        _run(POSTGRES_UP)
    else:
        raise NotImplementedError(f"no full-text index for {dialect}")


def downgrade() -> None:
    _run(SQLITE_DOWN if op.get_bind().dialect.name == "sqlite" else POSTGRES_DOWN)
