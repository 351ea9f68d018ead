"""cut_clip: frame-exact on MP4, MPEG-TS, irregular keyframes;
smart where possible, else re-encode."""

from __future__ import annotations

from pathlib import Path

import pytest
from mediacheck import assert_frame_exact

from clipper.errors import InvalidInput
from clipper.media.cut import cut_clip, plan_cut
from clipper.media.probe import Frame, probe_media, video_packets
from testmedia.mediagen import make_video

pytestmark = pytest.mark.services


@pytest.mark.parametrize(("source", "start", "end", "method"), [
    ("gop2", 3.33, 11.71, "smart"),
    ("gop10", 3.33, 21.71, "smart"),
    ("gop10", 11.13, 18.5, "reencode"),  # inside one GOP: nothing to copy
    ("irregular", 1.01, 14.02, "smart"),  # scene-cut style keyframes at 1.3, 4.7, 5.1, 9.9, 13.2
    ("mpegts", 2.51, 9.87, "smart"),
])
def test_cut_is_frame_exact(request: pytest.FixtureRequest, tmp_path: Path, source: str,
                            start: float, end: float, method: str) -> None:
    src = request.getfixturevalue(source)
    result = cut_clip(src, start, end, tmp_path / "clip.mp4")
    assert result.method == method
    assert result.path == tmp_path / "clip.mp4"
    assert_frame_exact(result.path, src, start, end)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp files left behind


def test_non_x264_source_falls_back_to_reencode(media_dir: Path, tmp_path: Path) -> None:
    src = make_video(media_dir / "mpeg4.mkv", 12, vcodec="mpeg4", gop=25)
    result = cut_clip(src, 2.33, 7.71, tmp_path / "clip.mp4")
    assert result.method == "reencode"
    assert probe_media(result.path).video_codec == "h264"
    assert_frame_exact(result.path, src, 2.33, 7.71)


def test_audio_only_source_gives_aac_mp4(media_dir: Path, tmp_path: Path) -> None:
    src = make_video(media_dir / "radio.m4a", 10, video=False)
    result = cut_clip(src, 2.0, 6.5, tmp_path / "clip.mp4")
    info = probe_media(result.path)
    assert (info.has_video, info.has_audio, info.audio_codec) == (False, True, "aac")
    assert abs(result.duration - 4.5) < 0.05


def test_bad_range_is_refused(gop2: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        cut_clip(gop2, 30.0, 35.0, tmp_path / "clip.mp4")
    with pytest.raises(InvalidInput):
        cut_clip(gop2, 5.0, 4.0, tmp_path / "clip.mp4")
    assert not (tmp_path / "clip.mp4").exists()


def test_plan_splits_at_keyframes() -> None:
    frames = [Frame(i * 0.04, i * 0.04 - 0.08, i % 50 == 0) for i in range(300)]
    plan = plan_cut(frames, 1.01, 7.5)
    assert (plan.k1, plan.k2) == (2.0, 6.0)
    assert (plan.head, plan.mid, plan.tail, plan.frames) == (24, 100, 38, 162)
    assert (plan.after_k1, plan.before_after_k1) == (4.0, 24 + 50)  # an open GOP's check
    assert plan.reason == ""
    assert plan_cut(frames, 2.1, 3.9).reason == "clip shorter than a GOP"


@pytest.mark.parametrize("preset,crf", [("medium", 23), ("slow", 18), ("veryfast", 26)])
def test_smart_cut_matches_other_x264_settings(tmp_path, preset, crf):
    """Sources encoded with other presets/CRFs (x264's defaults included) still get a smart cut."""
    src = make_video(tmp_path / "src.mp4", 12, extra=["-preset", preset, "-crf", str(crf)])
    result = cut_clip(src, 2.37, 9.81, tmp_path / "clip.mp4")
    assert result.method == "smart"
    assert result.duration == pytest.approx(9.81 - 2.37, abs=0.041)


@pytest.mark.parametrize("preset", ["medium", "veryfast"])
def test_edges_use_the_quick_analysis_and_keep_the_sources_parameter_sets(tmp_path, preset):
    """The cheaper edge search (not in any SPS/PPS) is taken, and the cut stays smart and exact."""
    from clipper.media import cut as cutting

    src = make_video(tmp_path / "src.mp4", 12, extra=["-preset", preset])
    cutting._encoder_cache.clear()
    result = cut_clip(src, 2.37, 9.81, tmp_path / "clip.mp4")
    assert result.method == "smart"
    (found,) = cutting._encoder_cache.values()
    quick = cutting.QUICK_ANALYSIS[0 if preset == "veryfast" else 1]
    assert found is not None and found["x264-params"].endswith(quick)
    assert_frame_exact(result.path, src, 2.37, 9.81)


def test_pic_init_qp_is_read_from_the_pps(tmp_path):
    from clipper.media.cut import _param_sets, pic_init_qp

    src = make_video(tmp_path / "src.mp4", 2, extra=["-crf", "31"])
    pps = [n for n in _param_sets(src, 0.0, tmp_path) if n[0] & 0x1F == 8]
    assert [pic_init_qp(p) for p in pps] == [31]


def test_packet_window_gives_the_same_plan_as_the_whole_file(tmp_path):
    from clipper.media.cut import plan_cut
    from clipper.media.probe import probe_media, video_frames

    src = make_video(tmp_path / "long.mp4", 100, gop=250)  # keyframes every 10 s
    start = probe_media(src).start_time
    whole = plan_cut(video_frames(src, start), 70.3, 80.7)
    windowed = plan_cut(video_frames(src, start, (50.3, 100.7)), 70.3, 80.7)
    assert windowed == whole
    assert len(video_frames(src, start, (50.3, 100.7))) < len(video_frames(src, start))


def test_rotated_phone_recording_comes_out_upright(media_dir: Path, tmp_path: Path) -> None:
    """A phone's portrait video is stored landscape with a rotation flag; renders and
    thumbnails read pixels, so the clip must hold them upright (re-encoded, flag gone)."""
    import json
    import subprocess

    plain = make_video(media_dir / "landscape.mp4", 6)
    src = media_dir / "rotated.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(plain), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(src)], check=True)
    result = cut_clip(src, 1.0, 4.0, tmp_path / "clip.mp4")
    stream = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height:stream_side_data=rotation", "-of", "json", str(result.path)],
        capture_output=True, text=True, check=True).stdout)["streams"][0]
    before = probe_media(plain)
    assert (stream["width"], stream["height"]) == (before.height, before.width)
    assert not any("rotation" in d for d in stream.get("side_data_list", []))
    assert result.method == "reencode"


def test_edges_decode_on_one_thread(tmp_path, monkeypatch):
    """An edge decodes at most a GOP: frame threads there cost CPU that a burst's other clips
    queue for, so each edge's ffmpeg is given one decoder thread (before its input)."""
    import ffmpeg

    from clipper.media import cut as cutting

    real, seen = cutting.ffrun.run, []

    def watch(cmd, **kw):
        seen.append((kw.get("what"), cmd if isinstance(cmd, list) else ffmpeg.compile(cmd)))
        return real(cmd, **kw)

    monkeypatch.setattr(cutting.ffrun, "run", watch)
    src = make_video(tmp_path / "src.mp4", 8)
    result = cut_clip(src, 1.37, 6.81, tmp_path / "clip.mp4")
    assert result.method == "smart"
    edges = [args for what, args in seen if what == "re-encode the clip's edge"]
    assert len(edges) >= 2
    for args in edges:
        at = args.index("-threads")
        assert args[at + 1] == "1" and at < args.index("-i"), args
    assert_frame_exact(result.path, src, 1.37, 6.81)


def _frame_hashes(path: Path) -> list[str]:
    import subprocess

    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-f",
                          "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines()
            if line and not line.startswith("#")]


def _edge_encodes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The ffmpeg command lines of the edge encodes the cut runs from now on."""
    import ffmpeg

    from clipper.media import cut as cutting

    real, seen = cutting.ffrun.run, []

    def watch(cmd, **kw):  # type: ignore[no-untyped-def]
        if kw.get("what") == "re-encode the clip's edge":
            seen.append(ffmpeg.compile(cmd))
        return real(cmd, **kw)

    monkeypatch.setattr(cutting.ffrun, "run", watch)
    return seen


def test_a_widened_or_trimmed_clip_reencodes_only_the_edge_that_moved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge widens a ready clip and a reviewer trims one: the edge that did not move is
    lent from the store (from any section of the source: the key is the source time), and the
    clip comes out with the same frames as a cut from scratch."""
    from clipper.media.cut import EdgeStore

    src = make_video(tmp_path / "src.mp4", 12)
    store = EdgeStore(tmp_path / "edges", "source-1", 0.0)
    scratch = cut_clip(src, 0.53, 8.81, tmp_path / "c.mp4")  # (and the encoder search's trials)
    encodes = _edge_encodes(monkeypatch)
    assert cut_clip(src, 1.37, 8.81, tmp_path / "a.mp4", edges=store).method == "smart"
    assert len(encodes) == 2 and len(list(store.folder.glob("*.mp4"))) == 2

    encodes.clear()
    widened = cut_clip(src, 0.53, 8.81, tmp_path / "b.mp4", edges=store)  # the head moved
    assert widened.method == "smart" and len(encodes) == 1
    assert_frame_exact(widened.path, src, 0.53, 8.81)
    assert _frame_hashes(widened.path) == _frame_hashes(scratch.path)

    # The same source seen through a file that starts 2 s later (a later section).
    later = tmp_path / "later.mp4"
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-ss", "2", "-i", str(src), "-c", "copy",
                    "-avoid_negative_ts", "make_zero", str(later)], check=True)
    # Source time of the later file's t = 0: its first frame is the source's keyframe at 2 s.
    offset = 2.0 - video_packets(later, probe_media(later).start_time).frames[0].pts
    encodes.clear()
    trimmed = cut_clip(later, 3.1 - offset, 8.81 - offset, tmp_path / "d.mp4",
                       edges=EdgeStore(store.folder, "source-1", offset))  # the tail stays
    assert trimmed.method == "smart" and len(encodes) == 1
    assert _frame_hashes(trimmed.path) == _frame_hashes(
        cut_clip(src, 3.1, 8.81, tmp_path / "e.mp4").path)


def test_a_kept_edge_that_will_not_join_is_dropped(tmp_path: Path) -> None:
    from clipper.media.cut import EdgeStore

    src = make_video(tmp_path / "src.mp4", 8)
    store = EdgeStore(tmp_path / "edges", "source-1", 0.0)
    cut_clip(src, 1.37, 6.81, tmp_path / "a.mp4", edges=store)
    for kept in store.folder.glob("*.mp4"):
        kept.write_bytes(b"not a video")
    again = cut_clip(src, 1.37, 6.81, tmp_path / "b.mp4", edges=store)
    assert_frame_exact(again.path, src, 1.37, 6.81)
    assert not [k for k in store.folder.glob("*.mp4") if k.read_bytes() == b"not a video"]


def test_the_x264_settings_found_for_a_programme_are_shared_between_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The search for settings that reproduce a source's SPS/PPS (1-frame trials, ~0.7 CPU s)
    runs once per programme, not once per worker process; settings that stop matching (another
    x264) are forgotten and searched again."""
    import json

    from clipper.media import cut as cutting

    src = make_video(tmp_path / "src.mp4", 8, extra=["-preset", "faster", "-crf", "24"])
    known = tmp_path / "encoders"
    monkeypatch.setattr(cutting, "_encoder_cache", {})
    encodes = _edge_encodes(monkeypatch)
    cut_clip(src, 1.37, 6.81, tmp_path / "a.mp4", encoders=known)
    searched = len(encodes) - 2  # the trials, beside the two edges
    assert searched >= 1 and len(list(known.glob("*.json"))) == 1

    monkeypatch.setattr(cutting, "_encoder_cache", {})  # another worker process
    encodes.clear()
    again = cut_clip(src, 1.37, 6.81, tmp_path / "b.mp4", encoders=known)
    assert again.method == "smart" and len(encodes) == 2  # the edges only

    remembered = next(known.glob("*.json"))
    remembered.write_text(json.dumps({"preset": "ultrafast", "crf": 40,
                                      "x264-params": "threads=1:bframes=0"}))
    monkeypatch.setattr(cutting, "_encoder_cache", {})
    fallback = cut_clip(src, 1.37, 6.81, tmp_path / "c.mp4", encoders=known)
    assert_frame_exact(fallback.path, src, 1.37, 6.81)
    assert not remembered.exists()  # forgotten: the next cut searches again
    monkeypatch.setattr(cutting, "_encoder_cache", {})
    assert cut_clip(src, 1.37, 6.81, tmp_path / "d.mp4", encoders=known).method == "smart"


def test_the_tail_edge_is_decoded_from_its_idr_keyframe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tail edge starts at a keyframe: an IDR is sought straight to (not the GOP before it,
    decoded for nothing), in a plain MP4 and in a section with an edit list, frame-exact."""
    import subprocess

    src = make_video(tmp_path / "src.mp4", 12)
    section = tmp_path / "section.mp4"  # what yt-dlp's ffmpeg -ss copy leaves: an edit list
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "1.3", "-i", str(src), "-c", "copy",
                    str(section)], check=True)
    for source, (start, end) in ((src, (1.37, 9.81)), (section, (0.41, 7.93))):
        commands = _edge_encodes(monkeypatch)
        result = cut_clip(source, start, end, tmp_path / f"clip-{source.stem}.mp4")
        assert result.method == "smart"
        assert sum("-noaccurate_seek" in c for c in commands) == 1, commands
        assert_frame_exact(result.path, source, start, end)


def test_an_open_gop_source_is_cut_frame_exact(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyframes that are recovery points, not IDRs (open GOPs, as some broadcasters send):
    the tail is decoded from the keyframe before, as the head is. Such a keyframe numbers its
    pictures on from the source's last IDR: after a head from frame 58 or 28, a decoder took
    the middle's first pictures for late ones and dropped them (4 frames short). Those heads
    are encoded in two parts, the second numbered so that the middle follows it."""
    src = make_video(tmp_path / "open.mp4", 12,
                     extra=["-x264-params", "open-gop=1:keyint=50:min-keyint=50"])
    for start, end, encodes in ((1.37, 6.81, 2), (0.53, 9.93, 2), (2.3, 8.1, 3), (1.1, 7.7, 3)):
        commands = _edge_encodes(monkeypatch)
        result = cut_clip(src, start, end, tmp_path / "clip.mp4")
        assert_frame_exact(result.path, src, start, end)
        assert result.method == "smart" and len(commands) == encodes, (start, end, commands)
        assert not any("-noaccurate_seek" in c for c in commands)


def test_an_open_gop_head_nothing_orders_is_re_encoded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When no cut of the head lets a decoder show the middle in order, the clip is re-encoded
    whole, frame-exact (a decoder that dropped frames would lose them from the clip)."""
    from clipper.media import cut as cutting

    src = make_video(tmp_path / "open.mp4", 12,
                     extra=["-x264-params", "open-gop=1:keyint=50:min-keyint=50"])
    monkeypatch.setattr(cutting, "head_splits", lambda head, lsb, max_lsb: [head])
    result = cut_clip(src, 2.3, 8.1, tmp_path / "clip.mp4")
    assert result.method == "reencode"
    assert_frame_exact(result.path, src, 2.3, 8.1)
