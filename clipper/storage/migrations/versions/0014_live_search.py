"""Full-text index of channels' live transcripts (`live_segments`), built like the clips' one.

Why: `clipper search` and the Search page find words said on a channel even where nobody
flagged a clip, with the same query language and the same tokens as `segments` (migrations
0002 and 0005): SQLite gets an FTS5 external-content table fed by triggers, with the same
tokenizer and 1-3 letter prefix indexes; PostgreSQL a generated `tsv` column (punctuation made
a space first, 'simple' config) in a GIN index, plus a BRIN on `id` so the newest-first walk in
recent id windows is a cheap BitmapAnd (see 0004). Channel and wall-clock filters use the
existing (channel_id, wall_start) index, so nothing else is needed.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

SQLITE_UP = [
    # External content: the text lives once, in `live_segments`; rowid = live_segments.id.
    """CREATE VIRTUAL TABLE live_segments_fts USING fts5(
        text, content='live_segments', content_rowid='id',
        tokenize='unicode61 remove_diacritics 0', prefix='1 2 3')""",
    """CREATE TRIGGER live_segments_fts_ai AFTER INSERT ON live_segments BEGIN
        INSERT INTO live_segments_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER live_segments_fts_ad AFTER DELETE ON live_segments BEGIN
        INSERT INTO live_segments_fts(live_segments_fts, rowid, text)
            VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER live_segments_fts_au AFTER UPDATE OF text ON live_segments BEGIN
        INSERT INTO live_segments_fts(live_segments_fts, rowid, text)
            VALUES ('delete', old.id, old.text);
        INSERT INTO live_segments_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    # Rows the live transcriber wrote before this migration ran.
    "INSERT INTO live_segments_fts(live_segments_fts) VALUES ('rebuild')",
]

SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS live_segments_fts_au",
    "DROP TRIGGER IF EXISTS live_segments_fts_ad",
    "DROP TRIGGER IF EXISTS live_segments_fts_ai",
    "DROP TABLE IF EXISTS live_segments_fts",
]

POSTGRES_UP = [
    "SET LOCAL maintenance_work_mem = '256MB'",
    # The same expression as segments.tsv (0002): a query compiles to one tsquery for both.
    """ALTER TABLE live_segments ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig, regexp_replace(text, '[^[:alnum:]]+', ' ', 'g'))
    ) STORED""",
    "CREATE INDEX ix_live_segments_tsv ON live_segments USING gin (tsv)",
    "CREATE INDEX ix_live_segments_id_brin ON live_segments USING brin (id)"
    " WITH (pages_per_range = 2, autosummarize = on)",
    "ANALYZE live_segments",
]

POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS ix_live_segments_id_brin",
    "DROP INDEX IF EXISTS ix_live_segments_tsv",
    "ALTER TABLE live_segments DROP COLUMN IF EXISTS tsv",
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
