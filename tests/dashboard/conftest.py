"""Dashboard fixtures: a real SQLite database and the test Redis, people of every role, clip
rows."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from clipper.context import Context
from clipper.services import users
from clipper.settings import Settings
from clipper.storage.tables import Clip, Flag, Source, utcnow
from dashboard.deps import TOKEN_KEY

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
PASSWORD = "correct horse battery"
PEOPLE = {"vera": "volunteer", "sam": "social", "sue": "social", "eddie": "editor", "ada": "admin",
          "cora": "coordinator"}


@pytest.fixture(scope="session")
def team_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database that already holds the team (argon2 hashing once, not per test)."""
    from clipper.permissions import Actor
    from clipper.storage.database import Database

    path = tmp_path_factory.mktemp("team") / "team.db"
    shutil.copy(sqlite_template, path)
    settings = Settings.from_env({"CLIPPER_HOME": str(path.parent / "home"), "DATABASE_URL": f"sqlite:///{path}"})
    ctx = Context(settings=settings, db=Database(settings.database_url))
    for name, role in PEOPLE.items():
        users.add_user(ctx, Actor.operator("setup"), name, role, PASSWORD)
    ctx.db.dispose()  # the last connection closing checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def desk(team_template: Path, tmp_path: Path, make_settings: Callable, redis_conn,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """A Context whose settings the dashboard also sees (through the environment), with the team."""
    db = tmp_path / "desk.db"
    shutil.copy(team_template, db)
    url = f"sqlite:///{db}"
    settings = make_settings(url)
    for key, value in {"CLIPPER_HOME": str(settings.home), "DATABASE_URL": url,
                       "REDIS_URL": settings.redis_url,
                       "CLIPPER_URL_ALLOWLIST": "127.0.0.1"}.items():
        monkeypatch.setenv(key, value)
    ctx = Context.build(settings, redis_conn=redis_conn)
    yield ctx
    ctx.db.dispose()


def app_as(ctx: Context, name: str | None, script: Path = APP) -> AppTest:
    """The app (or one page file) with `name` logged in; not run yet."""
    at = AppTest.from_file(str(script), default_timeout=30)
    if name:
        at.session_state[TOKEN_KEY] = users.authenticate(ctx, name, PASSWORD)
    return at


def make_clip(ctx: Context, *, status: str = "ready", urgency: str = "normal", age_min: float = 0.0,
              by: str = "vera", note: str = "minister on waiting lists", tags: tuple = ("health",),
              **columns) -> int:
    """A clip row (and its flag) straight in the database: pages need no media pipeline."""
    with ctx.db.session() as s:
        src = s.query(Source).first() or Source(kind="url", key="url:x", location="https://news.example/x")
        s.add(src)
        s.flush()
        clip = Clip(source_id=src.id, start=10.0, end=16.0, status=status, urgency=urgency,
                    duration=6.0, created_at=utcnow() - timedelta(minutes=age_min), **columns)
        s.add(clip)
        s.flush()
        s.add(Flag(clip_id=clip.id, source_id=src.id, start=10.0, end=16.0, note=note,
                   tags=list(tags), urgency=urgency, by=by))
        return clip.id


def texts(at: AppTest) -> str:
    """Everything the page wrote, for 'does it say X' checks."""
    parts = [e.value for kind in ("markdown", "caption", "title", "header", "subheader", "success",
                                   "info", "warning", "error") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def open_app(desk: Context) -> Callable[..., AppTest]:
    """open_app("vera") -> the app with vera logged in (not run yet); script= for one page file."""
    return lambda name=None, script=APP: app_as(desk, name, script)


@pytest.fixture
def clip_row(desk: Context) -> Callable[..., int]:
    return lambda **kw: make_clip(desk, **kw)


@pytest.fixture
def page_text() -> Callable[[AppTest], str]:
    return texts


@pytest.fixture(scope="session")
def tiny_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2 s 160x90 MP4 and a JPEG thumbnail, made once with ffmpeg."""
    import subprocess

    folder = tmp_path_factory.mktemp("tiny")
    mp4, jpg = folder / "clip.mp4", folder / "thumb.jpg"
    base = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y"]
    subprocess.run([*base, "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10:duration=2",
                    "-f", "lavfi", "-i", "sine=duration=2",
                    "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(mp4)], check=True)
    subprocess.run([*base, "-i", str(mp4), "-frames:v", "1", str(jpg)], check=True)
    return {"mp4": mp4, "jpg": jpg}


@pytest.fixture
def transcribed(desk: Context, clip_row: Callable[..., int],
                tiny_media: dict[str, Path]) -> Callable[..., int]:
    """A ready clip with media and a word-timed transcript (indexed for search)."""
    from clipper.domain import Segment, Transcript, Word
    from clipper.pipeline.transcripts import store_transcript

    def make(text: str = "the minister promised shorter waiting lists", **kw) -> int:
        cid = clip_row(media_path=str(tiny_media["mp4"]), thumbnail_path=str(tiny_media["jpg"]),
                       **kw)
        words = tuple(Word(0.2 + 0.3 * i, 0.45 + 0.3 * i, w) for i, w in enumerate(text.split()))
        seg = Segment(words[0].start, words[-1].end, text, words)
        with desk.db.session() as s:
            store_transcript(s, s.get(Clip, cid), Transcript(text, "en", "test", "test", (seg,)),
                             by="system")
        return cid
    return make
