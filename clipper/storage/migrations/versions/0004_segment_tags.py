"""PostgreSQL: segments carry their clip's tags inside the full-text GIN index; id indexes for
newest-first search.

Why: a tag-filtered search ("nurses", tag health) had to fetch every heap row matching the
word to look up its clip's tags: ~100 ms in a million segments. With `segments.tags` in the
same multi-column GIN index as `tsv`, one index scan intersects word and tag and only the
rows that match both are read (~5 ms).

`segments.tags` is derived from `clip_tags` and kept by triggers, so no code path can forget
it: a new segment takes its clip's tags; a tag added to or removed from a clip rewrites that
clip's segments. SQLite needs none of this: its FTS5 walk checks `clip_tags` fast enough.

Two small indexes serve the newest-first walk (clipper/search/engine.py): a BRIN on `id` makes
"matches among the newest N ids" a cheap BitmapAnd the planner picks even when it underrates
how many rows a phrase matches (with the primary key it fetched every match instead), and
(clip_id, id) finds a clip's first segment without reading the table. A BRIN bitmap is lossy:
ANDed first, it would make PostgreSQL recheck every row of each page. Two pages per range
make it cost more to the planner than a typical text lookup, so the text bitmap goes first.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

POSTGRES_UP = [
    "SET LOCAL maintenance_work_mem = '256MB'",
    """CREATE FUNCTION clipper_clip_tags(clip integer) RETURNS text[] LANGUAGE sql STABLE AS $$
        SELECT coalesce(array_agg(tag::text ORDER BY tag), '{}') FROM clip_tags WHERE clip_id = clip
    $$""",
    # Dropped while the column is filled: the old GIN index would be rebuilt for nothing.
    "DROP INDEX ix_segments_tsv",
    "ALTER TABLE segments ADD COLUMN tags text[] NOT NULL DEFAULT '{}'",
    # Filled by rewriting the table (a "type change" to the same type): an UPDATE would leave
    # a dead copy of every row behind, doubling the table until a VACUUM FULL.
    "ALTER TABLE segments ALTER COLUMN tags TYPE text[] USING clipper_clip_tags(clip_id)",
    "CREATE INDEX ix_segments_tsv ON segments USING gin (tsv, tags)",
    "CREATE INDEX ix_segments_id_brin ON segments USING brin (id)"
    " WITH (pages_per_range = 2, autosummarize = on)",
    "CREATE INDEX ix_segments_clip_first ON segments (clip_id, id)",
    """CREATE FUNCTION clipper_segment_tags() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.tags := clipper_clip_tags(NEW.clip_id);
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER segments_tags_bi BEFORE INSERT OR UPDATE OF clip_id ON segments
       FOR EACH ROW EXECUTE FUNCTION clipper_segment_tags()""",
    """CREATE FUNCTION clipper_clip_tags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        clip integer;
        wanted text[];
    BEGIN
        FOR clip IN SELECT DISTINCT c FROM unnest(ARRAY[
            CASE WHEN TG_OP <> 'INSERT' THEN OLD.clip_id END,
            CASE WHEN TG_OP <> 'DELETE' THEN NEW.clip_id END]) AS c WHERE c IS NOT NULL
        LOOP
            wanted := clipper_clip_tags(clip);
            UPDATE segments SET tags = wanted WHERE clip_id = clip AND tags IS DISTINCT FROM wanted;
        END LOOP;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER clip_tags_segments_aiud AFTER INSERT OR UPDATE OR DELETE ON clip_tags
       FOR EACH ROW EXECUTE FUNCTION clipper_clip_tags_changed()""",
    "ANALYZE segments",
    "ANALYZE clip_tags",
]

POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS clip_tags_segments_aiud ON clip_tags",
    "DROP TRIGGER IF EXISTS segments_tags_bi ON segments",
    "DROP FUNCTION IF EXISTS clipper_clip_tags_changed()",
    "DROP FUNCTION IF EXISTS clipper_segment_tags()",
    "DROP INDEX IF EXISTS ix_segments_clip_first",
    "DROP INDEX IF EXISTS ix_segments_id_brin",
    "DROP INDEX IF EXISTS ix_segments_tsv",
    "ALTER TABLE segments DROP COLUMN IF EXISTS tags",
    "DROP FUNCTION IF EXISTS clipper_clip_tags(integer)",
    "CREATE INDEX ix_segments_tsv ON segments USING gin (tsv)",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(POSTGRES_UP)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _run(POSTGRES_DOWN)
