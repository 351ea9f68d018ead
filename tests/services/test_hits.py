"""Search a phrase from a real transcript, then clip a hit (both databases)."""

from __future__ import annotations

import json

import pytest

from clipper.cli import main
from clipper.errors import InvalidInput, PermissionDenied
from clipper.permissions import Actor
from clipper.search import search
from clipper.services.clips import clip_status
from clipper.services.flags import file_flag
from clipper.services.hits import clip_from_hit
from clipper.services.search import search_transcripts
from clipper.services.transcripts import edit_transcript

ANN = Actor.operator("ann")  # the local command-line operator, as `--by ann`


def test_search_then_clip_a_hit(ctx, broadcast, run_jobs):
    res = file_flag(ctx, ANN, str(broadcast), "6", "14", tags="health")
    run_jobs(ctx)
    st = clip_status(ctx, ANN, res.clip_id)
    assert st["status"] == "ready", st["error"]
    page = search(ctx.db, "schools")
    assert page.hits, st["transcript"]["text"]
    hit = page.hits[0]
    assert hit.clip_id == res.clip_id and "**" in hit.snippet
    assert hit.source_start == pytest.approx(st["start"] + hit.start)

    with pytest.raises(PermissionDenied):
        clip_from_hit(ctx, Actor("vic", "volunteer"), res.clip_id, hit.start)
    ed = Actor("ed", "editor")
    with pytest.raises(InvalidInput):
        clip_from_hit(ctx, ed, res.clip_id, "later")
    new = clip_from_hit(ctx, ed, res.clip_id, hit.start, before=1, after=20)
    new_st = clip_status(ctx, ANN, new.clip_id)
    assert new_st["start"] == pytest.approx(min(st["start"], hit.source_start - 1), abs=0.01)
    assert new_st["flaggers"][-1]["by"] == "ed"


def test_edit_reindexes_the_transcript(ctx, broadcast, run_jobs):
    res = file_flag(ctx, ANN, str(broadcast), "6", "14")
    run_jobs(ctx)
    before = clip_status(ctx, ANN, res.clip_id)["transcript"]["text"]
    sam = Actor("sam", "social")
    edit_transcript(ctx, sam, res.clip_id, before.replace("schools", "schools zanzibarian"))
    assert search_transcripts(ctx, sam, "zanzibarian").hits
    with pytest.raises(PermissionDenied):
        search_transcripts(ctx, Actor("vic", "volunteer"), "zanzibarian")
    with pytest.raises(PermissionDenied):
        edit_transcript(ctx, Actor("ed", "editor"), res.clip_id, "anything")
    after = clip_status(ctx, ANN, res.clip_id)
    assert "zanzibarian" in open(after["srt_path"]).read()
    words = [w for s in after["transcript"]["segments"] for w in s["words"]]
    assert all(b["start"] >= a["start"] for a, b in zip(words, words[1:], strict=False))


def test_search_cli_prints_a_list_of_hits(sqlite_ctx, broadcast, run_jobs, monkeypatch, capsys):
    s = sqlite_ctx.settings
    monkeypatch.setenv("CLIPPER_HOME", str(s.home))
    monkeypatch.setenv("DATABASE_URL", s.database_url)
    monkeypatch.setenv("REDIS_URL", s.redis_url)
    file_flag(sqlite_ctx, ANN, str(broadcast), "6", "14")
    run_jobs(sqlite_ctx)
    assert main(["search", "schools -zebra", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and set(hits[0]) == {"clip_id", "start", "end", "source_start", "source_end",
                                     "snippet", "source", "status", "score"}
    assert main(["search", '"unbalanced', "--json"]) in (0, 2)
    assert main(["clip-from-hit", str(hits[0]["clip_id"]), "--at", str(hits[0]["start"]),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[-1] or "{}") is not None
