"""probe_media refuses non-media; keyframe_times finds the real keyframes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mediacheck import IRREGULAR

from clipper.errors import InvalidInput
from clipper.media.probe import edit_list_lag, keyframe_times, probe_media

pytestmark = pytest.mark.services


def test_probe_video(gop2: Path) -> None:
    info = probe_media(gop2)
    assert (info.has_video, info.has_audio, info.width, info.height) == (True, True, 320, 180)
    assert info.fps == 25 and info.video_codec == "h264" and abs(info.duration - 24) < 0.1


def test_probe_mpegts_start_time(mpegts: Path) -> None:
    assert probe_media(mpegts).start_time > 1.0  # the MPEG-TS default offset


@pytest.mark.parametrize("content", [b"hello, not a video\n" * 50, b"\x00" * 4096])
def test_non_media_is_refused(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "upload.mp4"
    bad.write_bytes(content)
    with pytest.raises(InvalidInput, match="upload.mp4"):
        probe_media(bad)


def test_still_image_is_refused(tmp_path: Path) -> None:
    img = tmp_path / "photo.jpg"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64",
                    "-frames:v", "1", str(img)], check=True)
    with pytest.raises(InvalidInput):
        probe_media(img)


def test_keyframe_times(gop2: Path, irregular: Path, mpegts: Path) -> None:
    assert keyframe_times(gop2) == pytest.approx([2.0 * i for i in range(12)], abs=1e-3)
    assert keyframe_times(irregular) == pytest.approx(IRREGULAR, abs=0.021)
    assert keyframe_times(mpegts)[1] - keyframe_times(mpegts)[0] == pytest.approx(2.0, abs=1e-3)


def test_edit_list_lag_of_a_section_copy(gop2: Path, tmp_path: Path) -> None:
    out = tmp_path / "sec.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "5.31", "-t", "3", "-i", str(gop2),
                    "-c", "copy", str(out)], check=True)
    assert edit_list_lag(out) == pytest.approx(0.01, abs=1e-4)  # first frame shown is 5.32
    assert edit_list_lag(gop2) == 0.0


def _lag_by_ffprobe(path: Path) -> float:
    """The edit's start to the first frame at or after it, from ffprobe's raw packet times."""
    import json

    from clipper.media.probe import _read_moov, _video_edit_start

    media_time = _video_edit_start(_read_moov(path))
    out = subprocess.run(["ffprobe", "-v", "error", "-ignore_editlist", "1", "-select_streams",
                          "v:0", "-show_entries", "packet=pts:stream=time_base", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    num, _, den = data["streams"][0]["time_base"].partition("/")
    pts = [int(p["pts"]) for p in data["packets"]]
    return (min(p for p in pts if p >= media_time) - media_time) * int(num) / int(den)


@pytest.mark.parametrize("at", ["0.77", "5.31", "6.0", "9.97"])
def test_edit_list_lag_read_from_the_sample_tables_is_ffprobes(gop2: Path, irregular: Path,
                                                                tmp_path: Path, at: str) -> None:
    """The lag comes from the MP4's stts/ctts in Python (no ffprobe run per fetch): the same
    as ffprobe's packet times give, B-frames and irregular keyframes included."""
    from clipper.media.probe import _raw_video_pts, _read_moov

    for src in (gop2, irregular):
        out = tmp_path / f"{src.stem}-{at}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-ss", at, "-t", "3", "-i", str(src),
                        "-c", "copy", str(out)], check=True)
        assert _raw_video_pts(_read_moov(out)) is not None
        assert edit_list_lag(out) == pytest.approx(_lag_by_ffprobe(out), abs=1e-9), src.name


def _sections(gop2: Path, irregular: Path, mpegts: Path, tmp_path: Path) -> list[Path]:
    """Files as the cut meets them: whole MP4s (B-frames, irregular keyframes, none), section
    copies with edit lists, an MPEG-TS remuxed to MP4, a faststart join, a fragment-free MOV."""
    from testmedia.mediagen import make_video

    out = [gop2, irregular, make_video(tmp_path / "nob.mp4", 6, extra=["-bf", "0"])]
    for src, at in ((gop2, "5.31"), (irregular, "0.77"), (gop2, "6.0")):
        cut = tmp_path / f"{src.stem}-{at}.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-ss", at, "-t", "6", "-i", str(src),
                        "-c", "copy", str(cut)], check=True)
        out.append(cut)
    for name, args in (("remuxed.mp4", ["-f", "mp4"]),
                       ("faststart.mp4", ["-movflags", "+faststart"]), ("clip.mov", [])):
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(mpegts if name == "remuxed.mp4"
                                                            else gop2), "-c", "copy", *args,
                        str(tmp_path / name)], check=True)
        out.append(tmp_path / name)
    return out


def test_keyframe_parameter_sets_are_what_ffmpeg_gives(gop2: Path, irregular: Path,
                                                       mpegts: Path, tmp_path: Path) -> None:
    """The SPS/PPS a smart cut must reproduce, read in Python from the keyframe's sample (or
    the avcC box) rather than with an ffmpeg run: the same as `h264_mp4toannexb` gives, at
    every keyframe of every kind of file the cut meets."""
    from clipper.media.cut import _param_sets
    from clipper.media.probe import keyframe_parameter_sets, video_packets

    for src in _sections(gop2, irregular, mpegts, tmp_path):
        info = probe_media(src)
        keys = [f.pts for f in video_packets(src, info.start_time).frames if f.key]
        assert keys, src.name
        for k in keys[:3] + keys[-1:]:
            got = keyframe_parameter_sets(src, k, info.start_time)
            assert got is not None, (src.name, k)
            assert got == _param_sets(src, k, tmp_path), (src.name, k)
        # Not a keyframe's time: left to ffmpeg.
        assert keyframe_parameter_sets(src, keys[0] + 0.02, info.start_time) is None


def test_packets_listed_in_python_are_ffprobes(gop2: Path, irregular: Path, mpegts: Path,
                                               tmp_path: Path) -> None:
    """The cut's frame list (times, decode times, keyframes; packets an edit list hides left
    out) read from the MP4's sample tables in Python, without an ffprobe run: the same as
    ffprobe's, for every kind of file the cut meets."""
    from clipper.media.probe import mp4_video_packets, video_packets

    for src in _sections(gop2, irregular, mpegts, tmp_path):
        info = probe_media(src)
        by_ffprobe = video_packets(src, info.start_time)
        by_python = mp4_video_packets(src, info)
        assert by_python is not None, src.name
        assert len(by_python.frames) == len(by_ffprobe.frames), src.name
        for mine, theirs in zip(by_python.frames, by_ffprobe.frames, strict=True):
            assert mine.key == theirs.key, (src.name, mine, theirs)
            assert mine.pts == pytest.approx(theirs.pts, abs=1e-6), (src.name, mine, theirs)
            assert mine.dts == pytest.approx(theirs.dts, abs=1e-6), (src.name, mine, theirs)
        for key in ("codec_name", "profile", "pix_fmt", "has_b_frames", "level", "time_base"):
            assert str(by_ffprobe.stream[key]) == by_python.stream[key], (src.name, key)
    # Not an MP4 (MPEG-TS): ffprobe lists it.
    assert mp4_video_packets(mpegts, probe_media(mpegts)) is None


def test_mp4_frames_gives_ffprobes_duration_and_refuses_a_cut_short_file(
        gop2: Path, irregular: Path, mpegts: Path, tmp_path: Path) -> None:
    """The cut checks its joined clip in Python: the movie's duration as ffprobe gives the
    format's, and no listing at all for a file that ends before the samples it lists (a write
    cut short by a full disk), which ffprobe then reads."""
    import shutil

    from clipper.media.probe import mp4_frames, video_packets

    for src in _sections(gop2, irregular, mpegts, tmp_path):
        found = mp4_frames(src)
        assert found is not None, src.name
        listed = video_packets(src)
        assert found[1] == pytest.approx(listed.duration, abs=1e-6), src.name
        assert len(found[0]) == len(listed.frames), src.name
    short = tmp_path / "short.mp4"
    shutil.copyfile(tmp_path / "faststart.mp4", short)
    with open(short, "r+b") as f:
        f.truncate(short.stat().st_size - 100)
    assert mp4_frames(short) is None
