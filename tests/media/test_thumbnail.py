"""make_thumbnail writes a 640-px JPG of the frame asked for."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from clipper.media.probe import probe_media
from clipper.media.thumbnail import make_thumbnail
from testmedia.mediagen import decode_gray

pytestmark = pytest.mark.services


def test_thumbnail_is_a_640px_jpg_of_the_middle(gop2: Path, tmp_path: Path) -> None:
    out = make_thumbnail(gop2, tmp_path / "thumb.jpg")
    info = probe_media(out) if False else None  # noqa: F841 (images are refused by probe_media)
    thumb = decode_gray(out, size="160x90")[0]
    mid, late = (decode_gray(gop2, start=12.0, seconds=0.04)[0],
                 decode_gray(gop2, start=20.0, seconds=0.04)[0])
    assert out.read_bytes()[:2] == b"\xff\xd8"
    assert np.abs(thumb - mid).mean() < np.abs(thumb - late).mean() / 3
    assert [p.name for p in tmp_path.iterdir()] == ["thumb.jpg"]


def test_thumbnail_width(gop2: Path, tmp_path: Path) -> None:
    import json
    import subprocess
    out = make_thumbnail(gop2, tmp_path / "t.jpg", at=3.0)
    meta = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json",
                                      str(out)], capture_output=True, text=True, check=True).stdout)
    assert meta["streams"][0]["width"] == 640 and meta["streams"][0]["height"] == 360
    assert probe_media(gop2).has_video



def test_anamorphic_thumbnail_has_the_shown_aspect(tmp_path: Path) -> None:
    """JPEG has no pixel aspect: a 720x576 frame shown as 16:9 becomes a 16:9 thumbnail."""
    src = tmp_path / "sd.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=720x576:rate=25:duration=1", "-vf", "setsar=64/45",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", str(src)], check=True)
    info = probe_media(src)
    assert abs(info.sar - 64 / 45) < 1e-9 and info.display_width == 1024
    thumb = make_thumbnail(src, tmp_path / "t.jpg")
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height",
                          "-of", "csv=p=0", str(thumb)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "640,360"


def test_keyframe_thumbnail_is_the_keyframe_at_or_before(gop2: Path, tmp_path: Path) -> None:
    """The cut's quick still: one keyframe decoded (gop2 has one every 2 s), not the GOP."""
    info = probe_media(gop2)
    out = make_thumbnail(gop2, tmp_path / "k.jpg", at=13.52, info=info, keyframe=True)
    thumb = decode_gray(out, size="160x90")[0]
    key, asked = (decode_gray(gop2, start=12.0, seconds=0.04)[0],
                  decode_gray(gop2, start=13.52, seconds=0.04)[0])
    assert np.abs(thumb - key).mean() < np.abs(thumb - asked).mean() / 3
    assert [p.name for p in tmp_path.iterdir()] == ["k.jpg"]


def test_a_clip_without_picture_gets_its_waveform(media_dir: Path, tmp_path: Path) -> None:
    """Sound alone (radio): the still is the waveform of the 10 s around the moment, drawn on
    black — a tone draws a band, silence nothing."""
    from testmedia.mediagen import make_video

    tone = make_video(media_dir / "tone.m4a", 30, video=False)
    out = make_thumbnail(tone, tmp_path / "w.jpg", at=20.0)
    meta = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height",
                           "-of", "csv=p=0", str(out)], capture_output=True, text=True, check=True)
    assert out.read_bytes()[:2] == b"\xff\xd8" and meta.stdout.strip() == "640,360"
    drawn = decode_gray(out, size="160x90")[0]
    silent = tmp_path / "silent.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono",
                    "-t", "12", "-c:a", "aac", str(silent)], check=True)
    blank = decode_gray(make_thumbnail(silent, tmp_path / "s.jpg"), size="160x90")[0]
    assert drawn.mean() > blank.mean() + 5, (drawn.mean(), blank.mean())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jpg", "silent.m4a", "w.jpg"]
