"""The Live page (watch a recorded channel, clip it by the clock) and the System page's channel
controls, under AppTest with real SQLite, Redis and ffmpeg-made recordings.

Channels here are rows plus stored segments made by ffmpeg (what the recorder would have stored),
so the page and the channel services run exactly as they do behind `clipper up`, without a live
server or a recorder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.channels import list_channels, remove_channel
from clipper.storage.tables import Channel, ChannelSegment, Clip, Flag, Source

DASH = Path(__file__).resolve().parents[2] / "dashboard"
LIVE, SYSTEM = DASH / "volunteer" / "live.py", DASH / "admin" / "system.py"
OPERATOR = Actor.operator("test")
SEGMENT_SECONDS = 10


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, float, int]]:
    """15 MPEG-TS segments of 10 s (160x90, 10 fps, a keyframe a second, AAC), as a live HLS
    channel delivers them: (file, duration, first PTS in 90 kHz ticks)."""
    from testmedia.mediagen import make_hls, make_video

    folder = tmp_path_factory.mktemp("recording")
    src = make_video(folder / "src.mp4", 15 * SEGMENT_SECONDS, size="160x90", rate=10, gop=10)
    make_hls(src, folder / "hls", hls_time=SEGMENT_SECONDS)
    out = []
    for ts in sorted((folder / "hls").glob("seg*.ts")):
        probe = json.loads(subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=start_time,duration", "-of", "json",
             str(ts)], capture_output=True, text=True, check=True).stdout)["format"]
        out.append((ts, float(probe["duration"]), round(float(probe["start_time"]) * 90000)))
    assert len(out) == 15
    return out


def add_recorded_channel(ctx: Context, recording, name: str, *, upto_ago: float = 2.0,
                         skip: tuple[int, ...] = (), **columns) -> str:
    """A channel row whose stored segments end `upto_ago` seconds before now (segments listed in
    `skip` are missing: a gap). Files are copied where the recorder puts them."""
    now = time.time()
    total = sum(d for _, d, _ in recording)
    start = now - upto_ago - total
    with ctx.db.session() as s:
        channel = Channel(name=name, url=f"http://127.0.0.1:9/{name}/live.m3u8", state="recording",
                          clock="program-date-time",
                          last_segment_at=datetime.fromtimestamp(now - upto_ago, UTC), **columns)
        s.add(channel)
        s.flush()
        wall = start
        for seq, (ts, duration, pts) in enumerate(recording):
            if seq not in skip:
                when = datetime.fromtimestamp(wall, UTC)
                folder = (ctx.settings.media_dir / "channels" / name / when.strftime("%Y-%m-%d")
                          / when.strftime("%H"))
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{seq}-{round(wall * 1000)}.ts"
                shutil.copyfile(ts, path)
                s.add(ChannelSegment(channel_id=channel.id, seq=seq, wall_start=wall,
                                     duration=duration, first_pts=pts, discontinuity=False,
                                     bytes=path.stat().st_size, path=str(path)))
            wall += duration
    return name


def add_empty_channel(ctx: Context, name: str, **columns) -> str:
    with ctx.db.session() as s:
        s.add(Channel(name=name, url=f"http://127.0.0.1:9/{name}/live.m3u8", **columns))
    return name


def open_live(open_app, name: str = "vera"):
    """The Live page as `name` reaches it from the menu."""
    at = open_app(name)
    at.run()
    at.switch_page(str(LIVE)).run()
    assert not at.exception, at.exception
    return at


def open_system(open_app, name: str = "ada"):
    at = open_app(name)
    at.run()
    at.switch_page(str(SYSTEM)).run()
    assert not at.exception, at.exception
    return at


def channel_flags(ctx: Context) -> list[tuple[Flag, Clip, Source]]:
    with ctx.db.session() as s:
        rows = [(f, f.clip, f.clip.source) for f in s.query(Flag).order_by(Flag.id)]
        s.expunge_all()
        return rows


def main_texts(at) -> list[str]:
    """What the page wrote, in page order (main area): to check what sits under what."""
    return list(_walk(at.main))


def _walk(node):
    kids = getattr(node, "children", None)
    if isinstance(kids, dict):
        for kid in kids.values():
            yield from _walk(kid)
    elif node.type == "button":
        yield f"button:{node.label}"
    elif isinstance(getattr(node, "value", None), str):
        yield f"{node.type}:{node.value}"


# ---- the Live page --------------------------------------------------------------------------

def test_live_lists_channels_shows_recording_and_plays_the_last_minutes(open_app, desk,
                                                                         recording, page_text):
    add_recorded_channel(desk, recording, "news-one")
    add_empty_channel(desk, "news-two", state="stalled")
    at = open_live(open_app)
    assert [t.value for t in at.title] == ["Live"]
    picker = at.selectbox(key="live_channel")
    assert picker.label == "Channel" and list(picker.options) == ["news-one", "news-two"]
    text = page_text(at)
    assert "Recording" in text and "s behind live" in text
    assert len(at.get("video")) == 1  # the latest minute, from the stored segments
    slider = at.slider(key="live_back")
    assert (slider.label, slider.min, slider.max) == ("Minutes back", 0, 10)
    slider.set_value(1).run()  # scrub back: the minute that ended a minute ago
    assert not at.exception and len(at.get("video")) == 1
    assert "Plays from" in page_text(at)
    labels = {w.label for w in (*at.text_input, *at.selectbox)}
    assert {"Channel", "Note", "Tags", "Urgency"} <= labels
    buttons = [b.label for b in at.button if b.key and b.key.startswith("live_")]
    assert buttons == ["Refresh video", "Mark in", "Mark out", "Clip last 30 s",
                       "Clip last 2 min"]
    picker.select("news-two").run()
    text = page_text(at)
    assert "Stalled" in text and "nothing recorded yet" in text
    assert not at.get("video") and "Nothing recorded between" in text


def test_no_channels_says_where_they_come_from(open_app, page_text):
    at = open_live(open_app)
    assert "An admin adds them on the System page" in page_text(at)
    assert not [b for b in at.button if b.key and b.key.startswith("live_")]


@pytest.mark.parametrize(("key", "seconds"), [("live_last30", 30), ("live_last120", 120)])
def test_clip_last_files_a_channel_flag_and_shows_its_status(open_app, desk, recording,
                                                             page_text, key, seconds):
    add_recorded_channel(desk, recording, "news-one")
    at = open_live(open_app)
    at.text_input(key="live_note").input("minister misspeaks")
    at.text_input(key="live_tags").input("health, live")
    at.selectbox(key="live_urgency").select("high")
    before = time.time()
    at.button(key=key).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success and "Flag saved as clip" in at.success[0].value
    [(flag, clip, source)] = channel_flags(desk)
    assert (source.kind, source.location) == ("channel", "news-one")
    assert (flag.by, flag.note, flag.tags, flag.urgency) == ("vera", "minister misspeaks",
                                                              ["health", "live"], "high")
    assert flag.end - flag.start == pytest.approx(seconds, abs=0.5)
    assert before - 1 <= flag.end <= time.time() + 1
    assert at.text_input(key="live_note").value == ""  # cleared for the next flag
    text = page_text(at)
    assert "My live flags" in text and f"**Clip {clip.id}** · news-one" in text
    assert [p.proto.text for p in at.get("progress")] == [f"Status: {clip.status}"] or \
        at.get("progress")[0].proto.text.startswith("Status: ")
    assert "high" in text and "minister misspeaks" in text


def test_mark_in_then_mark_out_files_the_marked_moment(open_app, desk, recording, monkeypatch):
    monkeypatch.setenv("CLIPPER_TIMEZONE", "Europe/London")
    add_recorded_channel(desk, recording, "news-one")
    at = open_live(open_app)
    at.button(key="live_mark_out").click().run()  # out before in: explained, nothing filed
    assert "Press Mark in first" in at.error[0].value and not channel_flags(desk)
    at.button(key="live_mark_in").click().run()
    mark = at.session_state["live_mark"]
    marked_in = datetime.fromisoformat(mark["in"])
    london = marked_in.astimezone(ZoneInfo("Europe/London")).strftime("%H:%M:%S")
    assert any(f"In {london}" in m.value and "Europe/London" in m.value for m in at.markdown)
    # The volunteer watches for 20 s before Mark out: move the mark back rather than wait.
    earlier = marked_in.timestamp() - 20
    at.session_state["live_mark"] = {**mark, "in": datetime.fromtimestamp(earlier, UTC)
                                     .isoformat(timespec="milliseconds")}
    at.button(key="live_mark_out").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Flag saved as clip" in at.success[0].value
    [(flag, _clip, source)] = channel_flags(desk)
    assert source.location == "news-one"
    assert flag.start == pytest.approx(earlier, abs=0.01)
    assert flag.end - flag.start == pytest.approx(20, abs=1)
    assert any(" · out " in m.value for m in at.markdown)


def test_flag_errors_are_explained_under_the_buttons(open_app, desk, recording):
    add_recorded_channel(desk, recording, "news-one")
    add_empty_channel(desk, "news-two")
    at = open_live(open_app)
    remove_channel(desk, OPERATOR, "news-one")  # an admin removes it while the page is open
    at.button(key="live_last30").click().run()
    assert not at.exception and at.error and not at.success
    assert "no channel named 'news-one'" in at.error[0].value
    assert not channel_flags(desk)
    order = main_texts(at)
    error_at = next(i for i, t in enumerate(order) if t.startswith("error:"))
    assert error_at > order.index("button:Clip last 2 min")


# ---- the System page ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["vera", "sam", "eddie"])
def test_only_admins_reach_the_channel_controls(open_app, desk, recording, page_text, name):
    add_recorded_channel(desk, recording, "news-one")
    at = open_app(name, SYSTEM)
    at.run()
    assert "may not open this page" in page_text(at)
    assert not at.button and not at.text_input and "news-one" not in page_text(at)


def test_admin_sees_each_channel_status_lag_gaps_disk_and_notes(open_app, desk, recording,
                                                                page_text):
    from clipper.pipeline.retention import disk_note_path

    add_recorded_channel(desk, recording, "news-one", skip=(5, 6),
                         error="Playlist reload failed: HTTP 503 (retrying).")
    add_empty_channel(desk, "broken", state="error", error="The source answered 404.")
    note = disk_note_path(desk.settings.media_dir)  # what the retention sweep leaves
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(json.dumps({"message": "Deleted 40 oldest recorded segments: disk short."}))
    at = open_system(open_app)
    text = page_text(at)
    assert "**news-one** · :green[**recording**] · clock program-date-time" in text
    assert "1 gap, 20 s missing" in text or "1 gap, 2" in text
    assert "Lag 2 s" in text or "Lag 3 s" in text
    assert "KB" in text or "MB" in text
    warnings = [w.value for w in at.warning]
    assert "Deleted 40 oldest recorded segments: disk short." in warnings
    assert "Playlist reload failed: HTTP 503 (retrying)." in warnings
    assert "The source answered 404." in [e.value for e in at.error]
    assert "Nothing recorded yet · keeps 24 h" in text


def test_admin_adds_pauses_resumes_and_removes_a_channel(open_app, desk, page_text):
    at = open_system(open_app)
    submit = "FormSubmitter:add_channel-Add channel"

    def add(name: str, url: str, hours: str = "") -> None:
        at.text_input(key="chan_name").input(name)
        at.text_input(key="chan_url").input(url)
        at.text_input(key="chan_retention").input(hours)
        at.button(key=submit).click().run()
        assert not at.exception, at.exception

    add("bad name!", "http://127.0.0.1:9/live.m3u8")
    assert at.error and "bad name!" in at.error[0].value  # the service's words
    add("news-one", "http://10.9.8.7/live.m3u8")
    assert at.error and not list_channels(desk, OPERATOR)  # a private host, not allowlisted
    add("news-one", "http://127.0.0.1:9/live.m3u8", "soon")
    assert "is not a number" in at.error[0].value
    add("news-one", "http://127.0.0.1:9/live.m3u8", "6")
    assert not at.error and "Added news-one" in at.success[0].value
    assert at.text_input(key="chan_name").value == ""
    [ch] = list_channels(desk, OPERATOR)
    assert (ch["name"], ch["url"], ch["retention_hours"]) == ("news-one",
                                                             "http://127.0.0.1:9/live.m3u8", 6)
    add("news-one", "http://127.0.0.1:9/other.m3u8")
    assert at.error and len(list_channels(desk, OPERATOR)) == 1  # a duplicate

    at.button(key="pause_news-one").click().run()
    assert "news-one is paused" in at.success[0].value
    assert list_channels(desk, OPERATOR)[0]["status"] == "paused"
    assert ":gray[**paused**]" in page_text(at)
    at.button(key="resume_news-one").click().run()
    assert "news-one records again" in at.success[0].value
    assert list_channels(desk, OPERATOR)[0]["status"] != "paused"

    at.button(key="rm_news-one").click().run()  # not confirmed: nothing happens
    assert "Yes, remove news-one" in at.error[0].value and list_channels(desk, OPERATOR)
    at.checkbox(key="rmok_news-one").check()
    at.button(key="rm_news-one").click().run()
    assert "Removed news-one." in at.success[0].value
    assert not list_channels(desk, OPERATOR)
    assert "No channels yet" in page_text(at)


# ---- channel clips elsewhere ----------------------------------------------------------------

def test_channel_clips_show_wall_clock_times_and_missing_seconds(open_app, desk, recording,
                                                                 page_text):
    """My flags and the clip page show a channel clip by the clock (its start/end are Unix
    seconds), and the clip page says which seconds the recording lacked."""
    from clipper.services.flags import flag_channel

    add_recorded_channel(desk, recording, "news-one")
    result = flag_channel(desk, Actor("vera", "volunteer"), "news-one", last=30, note="by clock")
    with desk.db.session() as s:
        clip = s.get(Clip, result.clip_id)
        clip.gaps = [[clip.start + 5, clip.start + 8]]
        start, end = clip.start, clip.end
    hms = [datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S") for t in (start, end, start + 5)]
    at = open_app("vera")
    at.run()  # the flag page: My flags
    assert f"**Clip {result.clip_id}** · news-one {hms[0]}–{hms[1]} (UTC) · normal" in \
        page_text(at)
    at.query_params["id"] = str(result.clip_id)
    at.switch_page(str(DASH / "clip.py")).run()
    assert not at.exception
    day = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
    assert f"**Interval:** {day} {hms[0]}–{hms[1]} (UTC)" in page_text(at)
    assert any(f"missing from the clip: {hms[2]}" in w.value for w in at.warning)


def test_a_link_to_a_moment_plays_from_just_before_it(open_app, desk, recording, page_text):
    add_recorded_channel(desk, recording, "news-one")  # 150 s, ending 2 s ago
    moment = round(time.time() - 100, 1)  # what the link carries, so seconds round alike
    at = open_app("vera")
    at.query_params.update({"channel": "news-one", "at": f"{moment:.1f}"})
    at.run()
    at.switch_page(str(LIVE)).run()
    assert not at.exception and len(at.get("video")) == 1
    start = datetime.fromtimestamp(moment - 5, ZoneInfo(desk.settings.timezone))
    assert f"Plays from {start:%H:%M:%S}" in page_text(at)
    at.slider(key="live_back").set_value(0).run()  # then the slider plays what it says
    at.slider(key="live_back").set_value(1).run()
    assert f"Plays from {start:%H:%M:%S}" not in page_text(at)
