"""Source kinds: what each claims and refuses before anything is stored (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper.errors import InvalidInput, UnsafeURL
from clipper.pipeline.sources import SOURCE_KINDS, resolve_source
from clipper.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"CLIPPER_HOME": str(tmp_path / "home")})


def test_each_kind_is_registered_under_the_name_it_stores() -> None:
    assert ({name: kind.name for name, kind in SOURCE_KINDS.items()}
            == {"url": "url", "file": "file", "channel": "channel"})


def test_a_url_is_checked_and_keyed_by_its_normal_form(tmp_path: Path) -> None:
    settings = Settings.from_env({"CLIPPER_HOME": str(tmp_path),
                                  "CLIPPER_URL_ALLOWLIST": "127.0.0.1"})
    ref = resolve_source("  HTTP://127.0.0.1:8080/news.m3u8 ", settings)
    assert (ref.kind, ref.location) == ("url", "HTTP://127.0.0.1:8080/news.m3u8")
    assert ref.key == "url:http://127.0.0.1:8080/news.m3u8"


def test_a_private_address_is_refused(settings: Settings) -> None:
    with pytest.raises(UnsafeURL):
        resolve_source("http://10.0.0.5/feed.m3u8", settings)


def test_without_server_paths_a_path_is_refused_alike_whether_or_not_it_exists(
        settings: Settings, tmp_path: Path) -> None:
    real = tmp_path / "someone-elses-upload.mp4"
    real.write_bytes(b"\0" * 64)
    messages = []
    for text in (str(real), str(tmp_path / "missing.mp4"), "/etc/passwd"):
        with pytest.raises(InvalidInput) as err:
            resolve_source(text, settings)
        messages.append(err.value.message.replace(text, "PATH"))
    assert len(set(messages)) == 1 and "not a URL" in messages[0]


def test_an_empty_source_says_what_to_give(settings: Settings) -> None:
    with pytest.raises(InvalidInput, match="No source"):
        resolve_source("   ", settings, server_paths=True)


def test_the_operator_may_name_a_server_file_but_not_a_missing_one(
        settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="neither a URL nor an existing file"):
        resolve_source(str(tmp_path / "missing.mp4"), settings, server_paths=True)
