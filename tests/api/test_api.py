"""The HTTP API against a real server: tokens, flags, status objects equal to the CLI's, problem
details, no leaks, lists, the alert stream, packages, the calendar feed and rate limits."""

from __future__ import annotations

import io
import json
import subprocess
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from apiserver import SETUP, LiveApi
from channel_segments import store_spans
from polling import poll
from sqlalchemy import func, select

from clipper.api import feeds
from clipper.context import Context
from clipper.domain import Segment, Transcript, Word
from clipper.permissions import Actor
from clipper.pipeline.transcripts import store_transcript
from clipper.services import rota
from clipper.services.channels import add_channel
from clipper.services.renders import request_render
from clipper.services.tokens import create_token, list_tokens, revoke_token
from clipper.services.users import disable_user, set_role
from clipper.storage.tables import Alert, Clip, Flag, Source
from clipper.timecode import format_wallclock

URL = "http://127.0.0.1:9/news.mp4"
CHANNEL_URL = "http://127.0.0.1:9/live/index.m3u8"
VERA = Actor("vera", "volunteer")


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    """The body of a problem-details answer with `status` (RFC 9457 members checked)."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and {"type", "title", "status", "detail"} <= set(body)
    assert all(isinstance(body[k], str) for k in ("type", "title", "detail"))
    return body


def stored(ctx: Context) -> tuple[int, int, int]:
    """How many sources, flags and clips the database holds."""
    with ctx.db.session() as session:
        return tuple(session.scalar(select(func.count()).select_from(t))  # type: ignore[return-value]
                     for t in (Source, Flag, Clip))


def flag(api: LiveApi, who: str, **body: Any) -> dict[str, Any]:
    with api.client(who) as c:
        r = c.post("/api/flags", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def raise_alert(ctx: Context, channel: str, text: str = "waiting lists will fall",
                at: float | None = None) -> int:
    """An alert row, as the live transcriber's watch matcher stores one."""
    at = time.time() - 5 if at is None else at
    with ctx.db.session() as session:
        alert = Alert(watch="nhs", channel=channel, wall_start=at, wall_end=at + 2.0, text=text)
        session.add(alert)
        session.flush()
        return alert.id


def on_shift(ctx: Context, channel: str, who: str, *, hours_from: float = -1.0,
             hours_to: float = 1.0) -> int:
    """A shift on `channel` (from now + hours_from to now + hours_to) with `who` on it."""
    now = datetime.now(UTC)
    [sid] = rota.add_shifts(ctx, SETUP, channel, (now + timedelta(hours=hours_from)).isoformat(),
                            (now + timedelta(hours=hours_to)).isoformat())
    rota.signup(ctx, SETUP, sid, who)
    return sid


# ---- auth --------------------------------------------------------------------------------------

def test_a_missing_wrong_or_revoked_token_is_the_same_401_and_a_token_acts_as_its_owner(
        api, ctx):
    with api.client("sam") as c:
        assert c.get("/api/me").json() == {"name": "sam", "role": "social",
                                              "timezone": "UTC", "email": None}
    refusals = []
    with api.client() as c:
        r = c.get("/api/me")
        assert r.headers["www-authenticate"].startswith("Bearer")
        refusals.append(problem(r, 401))
        refusals.append(problem(c.get("/api/me", headers={"Authorization": "Basic dmVyYTp4"}),
                                401))
    calendar = create_token(ctx, VERA, kind="calendar")["token"]
    for token in ("clp_nonsense", "nonsense", api.tokens["vera"] + "x", calendar):
        with api.client(token=token) as c:
            refusals.append(problem(c.get("/api/me"), 401))

    [vera_token] = [t for t in list_tokens(ctx, SETUP, user="vera") if t["kind"] == "api"]
    revoke_token(ctx, VERA, vera_token["id"])
    disable_user(ctx, SETUP, "val")
    for who in ("vera", "val"):
        with api.client(who) as c:
            refusals.append(problem(c.get("/api/me"), 401))
    assert all(r == refusals[0] for r in refusals), "a 401 must not say why"
    assert refusals[0]["type"].endswith("unauthorized")

    set_role(ctx, SETUP, "eddie", "social")  # a token carries its owner's role as it is now
    with api.client("eddie") as c:
        assert c.get("/api/me").json()["role"] == "social"
    used = {t["user"]: t["last_used_at"] for t in list_tokens(ctx, SETUP, everyone=True)}
    assert used["sam"] and used["eddie"] and used["cora"] is None


# ---- flags and the status object --------------------------------------------------------------

def test_a_flag_by_url_is_stored_and_its_status_is_what_clipper_status_prints(api, ctx, cli):
    made = flag(api, "vera", source=URL, start="1:07.4", end="1:41.2", note="waiting lists promise",
                tags=["health", "#NHS"], urgency="high")
    assert set(made) == {"flag_id", "clip_id", "status", "merged"}
    assert made["status"] == "queued" and made["merged"] is False
    with api.client("vera") as c:
        r = c.get(f"/api/clips/{made['clip_id']}")
    assert r.status_code == 200
    status = r.json()
    code, out, _ = cli("status", str(made["clip_id"]), "--json")
    assert code == 0 and json.loads(out) == status
    assert (status["start"], status["end"]) == (67.4, 101.2)
    [flagger] = status["flaggers"]
    assert (flagger["by"], flagger["tags"], flagger["urgency"]) == ("vera", ["health", "nhs"],
                                                                    "high")

    # Someone else's overlapping flag joins the clip, as on the command line.
    again = flag(api, "sam", source=URL, start=70, end=105.5)
    assert again["clip_id"] == made["clip_id"] and again["merged"] is True
    assert stored(ctx) == (1, 2, 1)
    code, out, _ = cli("list", "--json")
    with api.client("sam") as c:
        assert c.get("/api/clips").json() == json.loads(out)


def test_a_channel_flag_by_the_last_seconds_or_by_the_clock(api, ctx):
    add_channel(ctx, SETUP, "news", CHANNEL_URL)
    now = time.time()
    store_spans(ctx, "news", [(now - 300 + 4 * i, 4.0) for i in range(75)])
    made = flag(api, "vera", channel="news", last=30, note="said it again")
    with api.client("vera") as c:
        status = c.get(f"/api/clips/{made['clip_id']}").json()
    assert status["channel"] == "news" and status["source"] == "news"
    assert status["end"] - status["start"] == pytest.approx(30.0, abs=0.01)
    assert status["end"] == pytest.approx(time.time(), abs=10)
    assert status["wall_end"] == format_wallclock(status["end"])

    by_clock = flag(api, "vera", channel="news", start=format_wallclock(now - 200),
                    end=format_wallclock(now - 180))
    assert by_clock["clip_id"] != made["clip_id"]
    assert stored(ctx) == (1, 2, 2)


BAD_FLAGS = [
    # (body, the `clipper flag` arguments refused with the same message, or None)
    ({"source": URL, "start": "5", "end": "1"}, [URL, "--start", "5", "--end", "1"]),
    ({"source": "ftp://example.org/x.mp4", "start": "1", "end": "5"},
     ["ftp://example.org/x.mp4", "--start", "1", "--end", "5"]),
    ({"source": "http://10.1.2.3/x.mp4", "start": "1", "end": "5"},
     ["http://10.1.2.3/x.mp4", "--start", "1", "--end", "5"]),
    ({"source": URL, "start": "1", "end": "2000"}, [URL, "--start", "1", "--end", "2000"]),
    ({"source": URL, "start": "soon", "end": "5"}, [URL, "--start", "soon", "--end", "5"]),
    ({"channel": "nowhere", "last": 30}, ["--channel", "nowhere", "--last", "30"]),
    ({"source": "/etc/hostname", "start": "1", "end": "5"}, None),  # no server files over HTTP
    ({"source": URL, "channel": "news", "last": 30}, None),
    ({}, None),
    ({"source": URL, "start": "1"}, None),
    ({"source": URL, "start": "1", "end": "5", "last": 5}, None),
    ({"source": URL, "start": "1", "end": "5", "urgency": "panic"}, None),
    ({"source": URL, "start": "1", "end": "5", "colour": "red"}, None),
    ({"source": URL, "start": "1\u0000", "end": "5"}, None),
    ({"source": URL, "start": -5, "end": 5}, None),
    ({"source": URL, "start": 1, "end": 1e300}, None),
    ({"source": 5, "start": "1", "end": "5"}, None),
    ({"source": URL, "start": "1", "end": "5", "tags": "health"}, None),
]


def test_bad_flags_are_422_problems_with_the_cli_message_and_nothing_is_stored(api, ctx, cli):
    with api.client("vera") as c:
        for body, argv in BAD_FLAGS:
            got = problem(c.post("/api/flags", json=body), 422)
            assert got["type"].endswith("invalid-input")
            if argv is not None:
                code, _, err = cli("flag", *argv)
                assert code == 2 and err == f"error: {got['detail']}\n", body
        problem(c.post("/api/flags", content=b"{not json",
                       headers={"Content-Type": "application/json"}), 422)
    assert stored(ctx) == (0, 0, 0)


# ---- who may see what ---------------------------------------------------------------------------

def test_403_and_404_reveal_nothing_to_those_who_may_not_see(api, ctx):
    theirs = flag(api, "sam", source=URL, start=1, end=5)["clip_id"]
    mine = flag(api, "vera", source="http://127.0.0.1:9/other.mp4", start=1, end=5)["clip_id"]
    missing = 987654

    with api.client("vera") as c:
        assert c.get(f"/api/clips/{mine}").status_code == 200
        hidden = problem(c.get(f"/api/clips/{theirs}"), 404)
        absent = problem(c.get(f"/api/clips/{missing}"), 404)
        assert hidden["detail"].replace(str(theirs), "N") == absent["detail"].replace(
            str(missing), "N")
        assert problem(c.get(f"/api/clips/{theirs}/package"), 404)["detail"] == \
            hidden["detail"]
        assert problem(c.get("/api/clips"), 403)["type"].endswith("forbidden")
        problem(c.get(f"/api/clips/{mine}/package"), 403)
        problem(c.get("/api/search", params={"q": "minister"}), 403)
        # Someone else's shifts: the same refusal whether or not the person exists.
        other = problem(c.get("/api/rota/shifts", params={"user": "cora"}), 403)
        nobody = problem(c.get("/api/rota/shifts", params={"user": "nobody"}), 403)
        assert other["detail"] == nobody["detail"]
        assert [f["clip_id"] for f in c.get("/api/me/flags").json()] == [mine]

    with api.client("sam") as c:
        assert c.get(f"/api/clips/{mine}").json()["flaggers"][0]["by"] == "vera"
        assert problem(c.get(f"/api/clips/{mine}/package"), 409)["type"].endswith("conflict")
    with api.client("cora") as c:
        assert c.get("/api/rota/shifts", params={"user": "vera"}).json() == []
        assert "nobody" in problem(c.get("/api/rota/shifts", params={"user": "nobody"}),
                                   404)["detail"]

    with api.client("ada") as c:
        for path in ("/api/clips/abc", "/api/clips/0", f"/api/clips/{2**40}"):
            problem(c.get(path), 422)
        problem(c.get("/api/clips", params={"limit": 0}), 422)
        problem(c.get("/api/search", params={"q": "a\u0000b"}), 422)
        assert problem(c.get("/api/nothing-here"), 404)["type"] == "about:blank"
        problem(c.delete(f"/api/clips/{mine}"), 405)


# ---- lists, search, rota, alerts ---------------------------------------------------------------

def test_lists_search_rota_and_alerts(api, ctx, cli):
    cid = flag(api, "vera", source=URL, start=1, end=7, tags=["health"])["clip_id"]
    words = tuple(Word(0.2 + 0.3 * i, 0.45 + 0.3 * i, w)
                  for i, w in enumerate("the minister promised shorter waiting lists".split()))
    with ctx.db.session() as session:
        store_transcript(session, session.get(Clip, cid),
                         Transcript(" ".join(w.word for w in words), "en", "test", "test",
                                    (Segment(words[0].start, words[-1].end,
                                             " ".join(w.word for w in words), words),)),
                         by="system")
    with api.client("eddie") as c:
        hits = c.get("/api/search", params={"q": "minister", "tag": "health"}).json()
        code, out, _ = cli("search", "minister", "--tag", "health", "--json")
        assert code == 0 and hits == json.loads(out)  # the very list the CLI prints
        assert [h["clip_id"] for h in hits] == [cid] and "kind" not in hits[0]
        assert c.get("/api/search", params={"q": "nowhere"}).json() == []
        # Pages as on the command line: --limit and --offset.
        words_hits = c.get("/api/search", params={"q": "the OR lists", "limit": 1}).json()
        code, out, _ = cli("search", "the OR lists", "--limit", "1", "--json")
        assert words_hits == json.loads(out) and len(words_hits) == 1
        assert c.get("/api/search", params={"q": "minister", "offset": 1}).json() == []
        problem(c.get("/api/search", params={"q": "minister", "limit": 101}), 422)
        bad = problem(c.get("/api/search", params={"q": '"unbalanced', "since": "2026-13-01"}),
                      422)
        code, _, err = cli("search", '"unbalanced', "--since", "2026-13-01")
        assert code == 2 and err == f"error: {bad['detail']}\n"
        ids = [st["id"] for st in c.get("/api/clips", params={"status": "queued"}).json()]
        assert ids == [cid]
        assert c.get("/api/clips", params={"status": "ready"}).json() == []

    add_channel(ctx, SETUP, "news", CHANNEL_URL)
    add_channel(ctx, SETUP, "sport", "http://127.0.0.1:9/sport/index.m3u8")
    now_shift = on_shift(ctx, "news", "vera")
    later = on_shift(ctx, "news", "vera", hours_from=24, hours_to=26)
    with api.client("val") as c:
        assert c.get("/api/rota/now").json() == rota.now(ctx, SETUP)
        assert [s["shift_id"] for s in c.get("/api/rota/now").json()] == [now_shift]
        assert c.get("/api/rota/shifts").json() == []
    with api.client("vera") as c:
        mine = c.get("/api/rota/shifts").json()
        assert [s["id"] for s in mine] == [now_shift, later]
        assert c.get("/api/rota/shifts", params={"days": 1}).json()[0]["id"] == now_shift
    with api.client("cora") as c:
        assert c.get("/api/rota/shifts", params={"user": "vera"}).json() == mine

    news = raise_alert(ctx, "news")
    sport = raise_alert(ctx, "sport", "the match was stopped")
    with api.client("sam") as c:
        assert [a["id"] for a in c.get("/api/alerts").json()] == [sport, news]
        assert c.get("/api/alerts", params={"since": time.time() + 60}).json() == []
        problem(c.get("/api/alerts", params={"since": "yesterday-ish"}), 422)
        problem(c.get("/api/alerts", params={"since": "0001-01-01T00:00+05:00"}), 422)
    with api.client("vera") as c:  # on shift for news: news's alerts only
        assert [a["id"] for a in c.get("/api/alerts").json()] == [news]
    with api.client("val") as c:  # on no shift now
        assert c.get("/api/alerts").json() == []


def _events(lines: Any, count: int) -> list[dict[str, Any]]:
    """The next `count` alert events of a server-sent event stream (comments skipped)."""
    found: list[dict[str, Any]] = []
    event: dict[str, str] = {}
    for line in lines:
        if line == "":
            if event.get("event") == "alert":
                found.append({"id": int(event["id"]), "data": json.loads(event["data"])})
                if len(found) == count:
                    return found
            event = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            event[key] = value
    raise AssertionError(f"the stream ended after {len(found)} events")


def test_the_alert_stream_sends_alerts_raised_after_connecting(api, ctx):
    add_channel(ctx, SETUP, "news", CHANNEL_URL)
    add_channel(ctx, SETUP, "sport", "http://127.0.0.1:9/sport/index.m3u8")
    before = raise_alert(ctx, "news", "an old one")
    with api.client("sam") as c:
        with c.stream("GET", "/api/alerts/stream") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            assert next(line for line in lines if line.startswith(": ")) == ": subscribed"
            new = raise_alert(ctx, "news", "waiting lists will fall by forty percent")
            [event] = _events(lines, 1)
        assert event["id"] == new != before
        assert event["data"]["text"] == "waiting lists will fall by forty percent"
        assert event["data"]["channel"] == "news" and event["data"]["wall_start"]
        problem(c.get("/api/alerts/stream", headers={"Last-Event-ID": "x"}), 422)

    # A volunteer's stream has only the channels of their shift; Last-Event-ID resumes.
    on_shift(ctx, "sport", "val")
    raise_alert(ctx, "news", "not for val")
    theirs = raise_alert(ctx, "sport", "for val")
    with api.client("val") as c:
        with c.stream("GET", "/api/alerts/stream", headers={"Last-Event-ID": "0"}) as r:
            [event] = _events(r.iter_lines(), 1)
    assert event["id"] == theirs
    with api.client() as c:
        problem(c.get("/api/alerts/stream"), 401)


# ---- the package --------------------------------------------------------------------------------

@pytest.fixture
def exported_clip(ctx: Context, tmp_path: Path, run_jobs) -> int:
    """A clip flagged by vera, rendered (1x1) and exported by the real render queue."""
    mp4 = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2",
                    "-f", "lavfi", "-i", "sine=duration=2", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                    str(mp4)], check=True)
    with ctx.db.session() as session:
        src = Source(kind="url", key=f"url:{URL}", location=URL)
        session.add(src)
        session.flush()
        clip = Clip(source_id=src.id, start=10.0, end=12.0, status="ready", duration=2.0,
                    media_path=str(mp4))
        session.add(clip)
        session.flush()
        session.add(Flag(clip_id=clip.id, source_id=src.id, start=10.0, end=12.0, note="promise",
                         tags=["health"], urgency="high", by="vera"))
        words = (Word(0.2, 0.6, "waiting"), Word(0.6, 1.0, "lists"))
        store_transcript(session, clip, Transcript("waiting lists", "en", "test", "test",
                                                   (Segment(0.2, 1.0, "waiting lists", words),)),
                         by="system")
        cid = clip.id
    request_render(ctx, SETUP, cid, formats="1x1", captions="none", export=True)
    run_jobs(ctx, ("render",))
    with ctx.db.session() as session:
        clip = session.get(Clip, cid)
        assert clip.status == "exported", clip.error
    return cid


def test_the_package_downloads_as_the_exported_zip(api, ctx, exported_clip):
    with api.client("sam") as c:
        st = c.get(f"/api/clips/{exported_clip}").json()
        r = c.get(f"/api/clips/{exported_clip}/package")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    on_disk = Path(st["export_path"]).with_suffix(".zip")
    assert on_disk.name in r.headers["content-disposition"]
    assert r.content == on_disk.read_bytes()
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = {Path(n).name for n in z.namelist()}
    assert {"caption.txt", "transcript.txt", "captions.srt"} <= names
    assert any(n.endswith(".mp4") for n in names)
    with api.client("vera") as c:  # her flag made it, but packages are the social team's
        problem(c.get(f"/api/clips/{exported_clip}/package"), 403)


# ---- the calendar feed ---------------------------------------------------------------------------

def test_the_calendar_feed_needs_no_header_and_ends_when_revoked(api, ctx):
    add_channel(ctx, SETUP, "news", CHANNEL_URL)
    sid = on_shift(ctx, "news", "vera", hours_from=24, hours_to=26)
    feed = create_token(ctx, VERA, name="phone", kind="calendar")
    assert feed["token"].startswith("clpcal_")
    with httpx.Client(base_url=api.url) as c:
        r = c.get(f"/api/calendar/{feed['token']}.ics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
        assert r.text.startswith("BEGIN:VCALENDAR") and f"UID:shift-{sid}@clipper" in r.text
        assert "Clipper rota: vera" in r.text
        unknown = problem(c.get("/api/calendar/clpcal_nothing.ics"), 404)
        # An API token is no calendar token, nor the other way round.
        assert problem(c.get(f"/api/calendar/{api.tokens['vera']}.ics"), 404) == unknown
        problem(c.get("/api/me", headers={"Authorization": f"Bearer {feed['token']}"}), 401)

        revoke_token(ctx, VERA, feed["id"])
        assert problem(c.get(f"/api/calendar/{feed['token']}.ics"), 404) == unknown


# ---- rate limits ---------------------------------------------------------------------------------

def test_a_flooding_token_gets_429_with_retry_after_while_others_are_served(start_api):
    live = start_api(CLIPPER_API_RATE="5")
    with live.client("vera") as flood, live.client("sam") as other, live.client() as anon:
        assert [flood.get("/api/me").status_code for _ in range(5)] == [200] * 5
        refused = flood.get("/api/me")
        body = problem(refused, 429)
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 12 and body["type"].endswith("rate-limited")
        assert f"{wait} s" in body["detail"]
        assert other.get("/api/me").status_code == 200

        # Without a token the address has an allowance of its own; tokens are still served.
        codes = [anon.get("/api/me").status_code for _ in range(6)]
        assert codes == [401] * 5 + [429]
        assert other.get("/api/me").status_code == 200


# ---- the schema ----------------------------------------------------------------------------------

CONTRACT_PATHS = {"/api/flags", "/api/clips", "/api/clips/{clip_id}",
                  "/api/clips/{clip_id}/package", "/api/search", "/api/rota/now",
                  "/api/rota/shifts", "/api/alerts", "/api/alerts/stream",
                  "/api/calendar/{token}.ics", "/api/me", "/api/me/flags", "/api/health"}


def test_the_openapi_schema_and_docs_are_served(api):
    with httpx.Client(base_url=api.url) as c:
        schema = c.get("/api/openapi.json").json()
        assert c.get("/api/docs").status_code == 200
    paths = set(schema["paths"])
    assert paths >= CONTRACT_PATHS
    assert not [p for p in paths if p.startswith(("/api/v1/", "/slack/"))]  # aliases, Slack's
    assert schema["components"]["securitySchemes"]["token"] == {
        "type": "http", "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["token"]["description"]}
    refusal = schema["paths"]["/api/flags"]["post"]["responses"]["422"]
    assert set(refusal["content"]) == {"application/problem+json"}
    body = schema["components"]["schemas"]["FlagIn"]
    assert "source" in body["properties"] and body["properties"]["url"]["deprecated"] is True
    assert all("url" not in example for example in body["examples"])


def test_health_needs_no_token_and_is_never_rate_limited(start_api):
    live = start_api(CLIPPER_API_RATE="2")
    with live.client() as anon:
        assert [anon.get("/api/health").json() for _ in range(10)] == [{"ok": True}] * 10
        assert [anon.get("/api/me").status_code for _ in range(3)] == [401, 401, 429]
        r = anon.get("/api/health")  # still answered once the address is over its limit
        assert (r.status_code, r.json()) == (200, {"ok": True})


def test_the_first_release_paths_still_answer(api, ctx, cli):
    with api.client("vera") as c:
        r = c.post("/api/flags", json={"source": URL, "start": "1", "end": "7"})
        assert r.status_code == 201 and r.headers["location"] == f"/api/clips/{r.json()['clip_id']}"
        old = c.post("/api/v1/flags", json={"url": "http://127.0.0.1:9/old.mp4", "start": "1",
                                           "end": "7"})
        assert old.status_code == 201, old.text
        assert set(old.json()) == {"flag_id", "clip_id", "status", "merged"}
        code, out, _ = cli("status", str(old.json()["clip_id"]), "--json")
        assert c.get(f"/api/v1/clips/{old.json()['clip_id']}").json() == json.loads(out) == \
            c.get(old.headers["location"]).json()
        both = problem(c.post("/api/flags", json={"source": URL, "url": URL, "start": "1",
                                                  "end": "7"}), 422)
        assert "source" in both["detail"]
        assert c.get("/api/v1/me").json()["name"] == "vera"
    assert stored(ctx) == (2, 2, 2)


def test_oversized_bodies_and_too_many_streams_are_refused_up_front(api, ctx):
    with api.client("vera") as c:
        big = problem(c.post("/api/flags", content=b"{" + b" " * (1 << 20) + b"}",
                             headers={"Content-Type": "application/json"}), 413)
        assert "larger than" in big["detail"]
    assert stored(ctx) == (0, 0, 0)

    with api.client("sam") as c:
        streams = [c.stream("GET", "/api/alerts/stream") for _ in range(feeds.MAX_STREAMS)]
        opened = [s.__enter__() for s in streams]
        assert all(r.status_code == 200 for r in opened)
        refused = c.get("/api/alerts/stream")
        assert problem(refused, 429)["detail"].startswith("sam already has")
        assert int(refused.headers["retry-after"]) >= 1
        with api.client("eddie") as other:  # someone else's streams are theirs
            with other.stream("GET", "/api/alerts/stream") as r:
                assert r.status_code == 200
        streams[0].__exit__(None, None, None)  # closing one frees its place

        def reopened() -> httpx.Response | None:
            r = c.send(c.build_request("GET", "/api/alerts/stream"), stream=True)
            if r.status_code == 200:
                return r
            r.close()
            return None
        again = poll(reopened, 10, "a stream to be given back")
        again.close()
        for s in streams[1:]:
            s.__exit__(None, None, None)
