"""What a local media file holds: streams, duration, frame and keyframe times (ffprobe).

Times are on the file's presentation timeline: t = 0 where `ffmpeg -ss 0 -i file` starts, i.e.
edit-list-aware presentation time minus the container's start_time (MPEG-TS files start at 1.4 s).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipper.domain import MediaInfo
from clipper.errors import InvalidInput, PermanentError
from clipper.media import ffrun
from clipper.media.h264 import slice_poc_lsb, sps_order
from clipper.media.mp4box import boxes, child

# Image "formats" that ffprobe reads as one-frame video: not a broadcast.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "gif", "webp_pipe", "tiff_pipe")


@dataclass(frozen=True)
class Frame:
    """One video frame (packet) as stored: presentation time, decode time, keyframe or not."""

    pts: float
    dts: float
    key: bool


def _rate(text: str | None) -> float:
    num, _, den = (text or "0/1").partition("/")
    return float(num) / float(den or 1) if float(den or 1) else 0.0


def _media_streams(streams: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [s for s in streams if s.get("codec_type") == kind
            and not (s.get("disposition") or {}).get("attached_pic")]


def probe_media(path: Path) -> MediaInfo:
    """Describe a local media file; InvalidInput when it is not audio or video."""
    data = probe_media_json(path)
    fmt = data.get("format") or {}
    video = _media_streams(data.get("streams") or [], "video")
    audio = _media_streams(data.get("streams") or [], "audio")
    duration = float(fmt.get("duration") or 0)
    if fmt.get("format_name") in _IMAGE_FORMATS or not (video or audio) or duration <= 0:
        raise InvalidInput(f"{Path(path).name} has no audio or video to clip.",
                           "Upload an audio or video file.")
    v = video[0] if video else {}
    return MediaInfo(
        path=Path(path), duration=duration, has_video=bool(video), has_audio=bool(audio),
        width=int(v.get("width") or 0), height=int(v.get("height") or 0),
        fps=_rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate")),
        video_codec=v.get("codec_name", ""),
        audio_codec=(audio[0] if audio else {}).get("codec_name", ""),
        format_name=fmt.get("format_name", ""), start_time=float(fmt.get("start_time") or 0),
        sar=_ratio(v.get("sample_aspect_ratio")),
        coding={k: str(v[k]) for k in CODING if v.get(k) is not None})


def stream_span(path: Path) -> tuple[float, float]:
    """(latest start, end) of the file's first video and first audio stream, on its own
    timestamps (no start_time taken off): every stream has begun by the first, and the file
    ends at the second."""
    data = probe_media_json(path)
    streams = data.get("streams") or []
    firsts = [found[0] for kind in ("video", "audio") if (found := _media_streams(streams, kind))]
    starts = [float(s["start_time"]) for s in firsts if s.get("start_time") not in (None, "N/A")]
    if not starts:
        raise InvalidInput(f"{Path(path).name} has no audio or video to clip.",
                           "Check the source.")
    fmt = data.get("format") or {}
    end = float(fmt.get("start_time") or 0) + float(fmt.get("duration") or 0)
    return max(starts), end


def probe_media_json(path: Path) -> dict[str, Any]:
    """ffprobe's format and streams of a local file; InvalidInput when it is not media."""
    try:
        return ffrun.probe(str(path))
    except PermanentError as exc:
        raise InvalidInput(f"{Path(path).name} is not a media file ({exc.message}).",
                           "Upload an audio or video file.") from exc


#: What `MediaInfo.coding` keeps of ffprobe's video stream.
CODING = ("codec_name", "profile", "pix_fmt", "field_order", "has_b_frames", "level", "time_base")


def _ratio(text: str | None) -> float:
    """"64:45" -> 1.422...; missing, "0:1" or "N/A" (unknown) -> 1.0 (square pixels)."""
    try:
        num, den = (int(x) for x in str(text).split(":"))
    except ValueError:
        return 1.0
    return num / den if num > 0 and den > 0 else 1.0


def video_frames(path: Path, start_time: float = 0.0,
                 window: tuple[float, float] | None = None) -> list[Frame]:
    """Every shown video frame in presentation order (packets only, no decoding: fast).

    Packets the edit list hides (flag D) are left out; times are shifted by -start_time.
    `window` (a, b) reads only from the keyframe before a to b: a cut from a long recording
    need not list the whole programme's packets.
    """
    return video_packets(path, start_time, window).frames


@dataclass(frozen=True)
class Packets:
    """One ffprobe run's view of a file's video: its frames, the stream and the container."""

    frames: list[Frame]
    stream: dict[str, Any]
    """ffprobe's description of the first video stream ({} when there is none)."""
    start_time: float
    duration: float


def video_packets(path: Path, start_time: float | None = None,
                  window: tuple[float, float] | None = None) -> Packets:
    """`video_frames`, the video stream and the container's start and duration, from one
    ffprobe (each start costs ~0.1 s, and a cut needs several). `start_time` None: the file's
    own, from the same run (then no `window`)."""
    extra = ["-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time,flags"]
    if window is not None:
        at = start_time or 0.0
        extra += ["-read_intervals", f"{max(0.0, window[0] + at):.3f}%{window[1] + at:.3f}"]
    data = ffrun.probe(str(path), extra=extra)
    fmt = data.get("format") or {}
    if start_time is None:
        start_time = float(fmt.get("start_time") or 0)
    frames = []
    for p in data.get("packets") or []:
        flags = p.get("flags", "")
        if "D" in flags or p.get("pts_time") in (None, "N/A"):
            continue
        pts = float(p["pts_time"]) - start_time
        dts = float(p["dts_time"]) - start_time if p.get("dts_time") not in (None, "N/A") else pts
        frames.append(Frame(pts, dts, "K" in flags))
    streams = data.get("streams") or []
    return Packets(sorted(frames, key=lambda f: f.pts), streams[0] if streams else {},
                   start_time, float(fmt.get("duration") or 0))


#: Above this many video samples a file's packets are listed by ffprobe, in a window.
_PYTHON_LISTING_MAX = 30_000


def mp4_video_packets(path: Path, info: MediaInfo) -> Packets | None:
    """`video_packets(path, info.start_time)` read from the MP4's sample tables in Python (an
    ffprobe is ~0.1 CPU s to start, and a cut's listing of a minute's packets as much again),
    with the stream described by `info.coding`. None when ffprobe should list them: not an MP4,
    no coding details, more than one edit, a fragmented file, a long recording."""
    if not info.coding:
        return None
    found = mp4_frames(path, info.start_time)
    return Packets(found[0], dict(info.coding), info.start_time, info.duration) if found else None


def mp4_frames(path: Path, start_time: float = 0.0) -> tuple[list[Frame], float] | None:
    """`video_frames(path, start_time)` and the movie's duration (ffprobe's format duration),
    from the sample tables in Python; None when they are not plain (see `mp4_video_packets`)
    or the file ends before the samples they list (a write cut short)."""
    if not str(path).lower().endswith((".mp4", ".m4v", ".mov")):
        return None
    try:
        buf = _read_moov(Path(path))
        trak = _video_trak(buf)
        stbl = _descend(buf, *trak, ("mdia", "minf", "stbl")) if trak else None
        found = _raw_video_times(buf)
        if not (trak and stbl and found) or len(found[0]) > _PYTHON_LISTING_MAX:
            return None
        dts, pts, scale = found
        shift = _single_edit_shift(buf, trak, scale, pts)
        keys = _sync_samples(buf, stbl)
        if shift is None or _data_end(buf) > Path(path).stat().st_size:
            return None
        movie_scale, movie_duration = _movie_header(buf)
        begins, duration = _video_edit_start(buf) or 0, movie_duration / movie_scale
    except (OSError, ValueError, IndexError, struct.error):
        return None
    at = start_time
    frames = [Frame((p - shift) / scale - at, (d - shift) / scale - at, keys is None or i in keys)
              for i, (d, p) in enumerate(zip(dts, pts, strict=True)) if p >= begins]
    return sorted(frames, key=lambda f: f.pts), duration


def _movie_header(buf: bytes) -> tuple[int, int]:
    """The movie's timescale and duration (mvhd)."""
    moov = child(buf, 0, len(buf), "moov")
    mvhd = child(buf, *moov, "mvhd") if moov else None
    if mvhd is None:
        raise ValueError("no mvhd")
    long = buf[mvhd[0]] == 1
    at = mvhd[0] + (20 if long else 12)
    scale, duration = struct.unpack(">IQ" if long else ">II", buf[at:at + (12 if long else 8)])
    return scale, duration


def _sync_samples(buf: bytes, stbl: tuple[int, int]) -> set[int] | None:
    """Indexes (0-based) of the sync samples (stss); None when every sample is one."""
    stss = child(buf, *stbl, "stss")
    if stss is None:
        return None
    count, = struct.unpack(">I", buf[stss[0] + 4:stss[0] + 8])
    return {n - 1 for n in _uints(buf, stss[0] + 8, count)}


def _data_end(buf: bytes) -> int:
    """Where the last sample of any track ends in the file."""
    moov = child(buf, 0, len(buf), "moov")
    end = 0
    for kind, s, e in boxes(buf, *moov) if moov else ():
        stbl = _descend(buf, s, e, ("mdia", "minf", "stbl")) if kind == "trak" else None
        stsz = child(buf, *stbl, "stsz") if stbl else None
        count = struct.unpack(">I", buf[stsz[0] + 8:stsz[0] + 12])[0] if stsz else 0
        if stbl and count:
            offset, size = _sample_place(buf, stbl, count - 1)
            end = max(end, offset + size)
    return end


def keyframe_times(path: Path) -> list[float]:
    """Presentation times of the keyframes (seconds on the file's -ss timeline)."""
    start = probe_media(path).start_time
    return [f.pts for f in video_frames(path, start) if f.key]


# --- MP4 edit lists: where the first shown video frame lies relative to the edit's start ---

def _elst_media_time(buf: bytes, start: int, end: int) -> int | None:
    version, = struct.unpack(">B", buf[start:start + 1])
    count, = struct.unpack(">I", buf[start + 4:start + 8])
    fmt, size = (">QqI", 20) if version == 1 else (">IiI", 12)
    for i in range(count):
        _, media_time, _ = struct.unpack(fmt, buf[start + 8 + i * size:start + 8 + (i + 1) * size])
        if media_time >= 0:  # -1 marks an empty edit (a delay), not the media start
            return media_time
    return None


def _video_trak(buf: bytes) -> tuple[int, int] | None:
    """The video track's box (its payload span) in a moov buffer."""
    moov = child(buf, 0, len(buf), "moov")
    for kind, s, e in boxes(buf, *moov) if moov else ():
        mdia = child(buf, s, e, "mdia") if kind == "trak" else None
        hdlr = child(buf, *mdia, "hdlr") if mdia else None
        if hdlr and buf[hdlr[0] + 8:hdlr[0] + 12] == b"vide":
            return s, e
    return None


def _video_edit_start(buf: bytes) -> int | None:
    """media_time of the video track's first edit (track timescale units), if it has one."""
    trak = _video_trak(buf)
    edts = child(buf, *trak, "edts") if trak else None
    elst = child(buf, *edts, "elst") if edts else None
    return _elst_media_time(buf, *elst) if elst else None


def _table(buf: bytes, span: tuple[int, int] | None, signed: bool = False) -> list[tuple[int, int]]:
    """(count, value) entries of an stts or ctts box (ctts version 1: signed values)."""
    if span is None:
        return []
    start, end = span
    count, = struct.unpack(">I", buf[start + 4:start + 8])
    fmt = ">Ii" if signed and buf[start] == 1 else ">II"
    if start + 8 + 8 * count > end:
        raise ValueError("truncated sample table")
    return [struct.unpack(fmt, buf[start + 8 + 8 * i:start + 16 + 8 * i]) for i in range(count)]


def _raw_video_pts(buf: bytes) -> tuple[list[int], int] | None:
    """The video samples' presentation times before any edit (decode times from stts plus
    ctts offsets, as ffprobe -ignore_editlist gives them) and the track's timescale; None when
    the tables are not there (a fragmented MP4)."""
    found = _raw_video_times(buf)
    return (found[1], found[2]) if found else None


def _raw_video_times(buf: bytes) -> tuple[list[int], list[int], int] | None:
    """The video samples' decode and presentation times before any edit, in decode order, and
    the track's timescale (see `_raw_video_pts`)."""
    trak = _video_trak(buf)
    mdia = child(buf, *trak, "mdia") if trak else None
    mdhd = child(buf, *mdia, "mdhd") if mdia else None
    stbl = _descend(buf, *mdia, ("minf", "stbl")) if mdia else None
    if not (mdhd and stbl):
        return None
    at = mdhd[0] + (20 if buf[mdhd[0]] == 1 else 12)
    timescale, = struct.unpack(">I", buf[at:at + 4])
    steps = _table(buf, child(buf, *stbl, "stts"))
    offsets = [v for n, v in _table(buf, child(buf, *stbl, "ctts"), signed=True)
               for _ in range(n)]
    dts, t = [], 0
    for n, delta in steps:
        dts += range(t, t + n * delta, delta) if delta else [t] * n
        t += n * delta
    if not dts or not timescale or (offsets and len(offsets) != len(dts)):
        return None
    return dts, [d + (offsets[i] if offsets else 0) for i, d in enumerate(dts)], timescale


def _read_moov(path: Path) -> bytes:
    """The file's top-level boxes up to and including moov (skipping mdat's payload)."""
    out = bytearray()
    with open(path, "rb") as f:
        while header := f.read(8):
            if len(header) < 8:
                break
            size, kind = struct.unpack(">I4s", header)
            extra = f.read(8) if size == 1 else b""
            size = struct.unpack(">Q", extra)[0] if size == 1 else size
            if kind == b"moov":
                return bytes(out + header + extra + f.read(size - 8 - len(extra)))
            out += struct.pack(">I4s", 8, kind)  # keep order, drop payload
            if size == 0:
                break
            f.seek(size - 8 - len(extra), 1)
    return b""


def edit_list_lag(path: Path) -> float:
    """Seconds between an MP4 video edit's start and the first frame it shows (0 if none).

    `ffmpeg -ss S -i URL -c copy` (yt-dlp's section download) starts the edit exactly at S, but
    the decoder presents the first frame at or after S as t = 0; this is that frame's lateness.
    """
    if not str(path).lower().endswith((".mp4", ".m4v", ".mov", ".m4a")):
        return 0.0
    buf = _read_moov(Path(path))
    media_time = _video_edit_start(buf)
    if not media_time:
        return 0.0
    # From the sample tables in Python; ffprobe (~0.08 CPU s, a fetch's third process) only
    # when they are not there.
    try:
        found = _raw_video_pts(buf)
    except (ValueError, struct.error):
        found = None
    if found is not None:
        pts, timescale = found
        after = [p for p in pts if p >= media_time]
        return (min(after) - media_time) / timescale if after else 0.0
    data = ffrun.probe(str(path), extra=["-ignore_editlist", "1", "-select_streams", "v:0",
                                          "-show_entries", "packet=pts:stream=time_base"])
    num, _, den = (data["streams"][0]["time_base"]).partition("/")
    raw = [int(p["pts"]) for p in data.get("packets") or [] if p.get("pts") not in (None, "N/A")]
    after = [p for p in raw if p >= media_time]
    return (min(after) - media_time) * int(num) / int(den) if after else 0.0


def avc_parameter_sets(path: Path) -> set[bytes] | None:
    """The SPS and PPS NAL units in an MP4's first `avcC` box (read in Python, no ffmpeg: the
    cut compares its re-encoded edges' with the source's); None when it has none."""
    buf = _read_moov(Path(path))
    moov = child(buf, 0, len(buf), "moov")
    for kind, s, e in boxes(buf, *moov) if moov else ():
        stsd = _descend(buf, s, e, ("mdia", "minf", "stbl", "stsd")) if kind == "trak" else None
        # stsd: version/flags and entry count, then sample entries; avc1's children start
        # after its 78 bytes of visual sample entry fields.
        entry = next(boxes(buf, stsd[0] + 8, stsd[1]), None) if stsd else None
        if entry and entry[0] in ("avc1", "avc3"):
            avcc = child(buf, entry[1] + 78, entry[2], "avcC")
            return _avcc_nals(buf[avcc[0]:avcc[1]]) if avcc else None
    return None


def keyframe_parameter_sets(path: Path, at: float, start_time: float) -> set[bytes] | None:
    """The SPS and PPS that apply to the keyframe shown at `at` (the file's -ss timeline, as
    `video_packets` gives it; `start_time` the container's): those the sample carries, else the
    `avcC` box's — what `ffmpeg -bsf h264_mp4toannexb` gives, read in Python (an ffmpeg start
    is ~0.1 CPU s). None when the MP4 is not one this reads plainly (one edit at most, one
    sample description) or no keyframe lies within a millisecond of `at`: ask ffmpeg."""
    found = _keyframe_nals(path, at, start_time)
    if found is None:
        return None
    nals, avcc = found
    carried = {n.rstrip(b"\x00") for n in nals if n and n[0] & 0x1F in (7, 8)}
    return carried or avcc


def keyframe_is_idr(path: Path, at: float, start_time: float) -> bool:
    """Whether the keyframe shown at `at` (as for `keyframe_parameter_sets`) is an H.264 IDR
    picture, after which no frame refers back or is shown earlier; False when it is an open
    GOP's recovery point or the file is not one this reads plainly."""
    found = _keyframe_nals(path, at, start_time)
    return found is not None and any(n and n[0] & 0x1F == 5 for n in found[0])


def keyframe_poc(path: Path, at: float, start_time: float) -> tuple[int, int] | None:
    """(pic_order_cnt_lsb, MaxPicOrderCntLsb) of the keyframe shown at `at` (as for
    `keyframe_parameter_sets`); None when the file or its H.264 is not one this reads."""
    found = _keyframe_nals(path, at, start_time)
    if found is None:
        return None
    nals, avcc = found
    sets = [n for n in nals if n and n[0] & 0x1F == 7] + sorted(n for n in avcc if n[0] & 0x1F == 7)
    order = sps_order(sets[0]) if sets else None
    first = next((n for n in nals if n and n[0] & 0x1F in (1, 5)), None)
    lsb = slice_poc_lsb(first, order) if order and first else None
    return None if lsb is None or order is None else (lsb, order.max_poc_lsb)


def _keyframe_nals(path: Path, at: float,
                   start_time: float) -> tuple[list[bytes], set[bytes]] | None:
    """The NAL units of the keyframe sample shown at `at`, and the avcC box's parameter sets."""
    try:
        buf = _read_moov(Path(path))
        found = _keyframe_sample(buf, at + start_time)
        if found is None:
            return None
        offset, size, avcc_box = found
        avcc = _avcc_nals(buf[avcc_box[0]:avcc_box[1]])
        if avcc is None:
            return None
        length_size = (buf[avcc_box[0] + 4] & 3) + 1
        with open(path, "rb") as f:
            f.seek(offset)
            sample = f.read(size)
    except (OSError, ValueError, IndexError, struct.error):
        return None
    nals, pos = [], 0
    while pos + length_size <= len(sample):
        n = int.from_bytes(sample[pos:pos + length_size], "big")
        nals.append(sample[pos + length_size:pos + length_size + n])
        pos += length_size + n
    return (nals, avcc) if pos == len(sample) else None


def _keyframe_sample(buf: bytes, pts: float) -> tuple[int, int, tuple[int, int]] | None:
    """(file offset, size, its avcC box) of the video sync sample presented at `pts` seconds
    (ffprobe's pts_time: edit start subtracted, an empty edit's delay added)."""
    trak = _video_trak(buf)
    stbl = _descend(buf, *trak, ("mdia", "minf", "stbl")) if trak else None
    found = _raw_video_pts(buf)
    if not (trak and stbl and found):
        return None
    raw, timescale = found
    shift = _single_edit_shift(buf, trak, timescale, raw)
    if shift is None:
        return None
    syncs = _sync_samples(buf, stbl)
    near = [i for i in (range(len(raw)) if syncs is None else sorted(syncs))
            if abs((raw[i] - shift) / timescale - pts) < 1e-3]
    if len(near) != 1:
        return None
    offset, size = _sample_place(buf, stbl, near[0])
    stsd = child(buf, *stbl, "stsd")
    if stsd is None or struct.unpack(">I", buf[stsd[0] + 4:stsd[0] + 8])[0] != 1:
        return None
    entry = next(boxes(buf, stsd[0] + 8, stsd[1]), None)
    avcc = child(buf, entry[1] + 78, entry[2], "avcC") if entry else None
    return (offset, size, avcc) if avcc else None


def _uints(buf: bytes, at: int, count: int) -> list[int]:
    return list(struct.unpack(f">{count}I", buf[at:at + 4 * count]))


def _single_edit_shift(buf: bytes, trak: tuple[int, int], timescale: int,
                       raw: list[int]) -> int | None:
    """Raw pts minus ffprobe's pts (track units) under no edit list or one edit (an empty edit,
    a delay, before it allowed); None for anything else. ffmpeg presents the first frame at or
    after the edit's start as the edit's time 0 (see `edit_list_lag`)."""
    edts = child(buf, *trak, "edts")
    elst = child(buf, *edts, "elst") if edts else None
    if elst is None:
        return 0
    start = elst[0]
    version, count = buf[start], struct.unpack(">I", buf[start + 4:start + 8])[0]
    fmt, size = (">QqI", 20) if version == 1 else (">IiI", 12)
    edits = [struct.unpack(fmt, buf[start + 8 + i * size:start + 8 + (i + 1) * size])
             for i in range(count)]
    delay = 0
    if edits and edits[0][1] == -1:
        delay = round(edits.pop(0)[0] * timescale / _movie_header(buf)[0])
    if len(edits) != 1 or edits[0][1] < 0 or edits[0][2] != 0x10000:
        return None
    shown = [p for p in raw if p >= edits[0][1]]
    return (min(shown) if shown else edits[0][1]) - delay


def _sample_place(buf: bytes, stbl: tuple[int, int], index: int) -> tuple[int, int]:
    """File offset and size of sample `index` (0-based), from stsz, stsc and stco/co64."""
    stsz = child(buf, *stbl, "stsz")
    if stsz is None:
        raise ValueError("no stsz")
    fixed, count = struct.unpack(">II", buf[stsz[0] + 4:stsz[0] + 12])
    sizes = [fixed] * count if fixed else _uints(buf, stsz[0] + 12, count)
    stsc = child(buf, *stbl, "stsc")
    co64 = child(buf, *stbl, "co64")
    stco = co64 or child(buf, *stbl, "stco")
    if stsc is None or stco is None:
        raise ValueError("no stsc or stco")
    n_chunks, = struct.unpack(">I", buf[stco[0] + 4:stco[0] + 8])
    width = 8 if co64 else 4
    chunk_at = [int.from_bytes(buf[stco[0] + 8 + i * width:stco[0] + 8 + (i + 1) * width], "big")
                for i in range(n_chunks)]
    runs = [struct.unpack(">III", buf[stsc[0] + 8 + 12 * i:stsc[0] + 20 + 12 * i])
            for i in range(struct.unpack(">I", buf[stsc[0] + 4:stsc[0] + 8])[0])]
    sample = 0
    for r, (first, per_chunk, _) in enumerate(runs):
        last = runs[r + 1][0] - 1 if r + 1 < len(runs) else n_chunks
        for chunk in range(first, last + 1):
            if index < sample + per_chunk:
                at = chunk_at[chunk - 1] + sum(sizes[sample:index])
                return at, sizes[index]
            sample += per_chunk
    raise ValueError("sample beyond the chunk table")


def _descend(buf: bytes, start: int, end: int, path: tuple[str, ...]) -> tuple[int, int] | None:
    span: tuple[int, int] | None = (start, end)
    for kind in path:
        span = child(buf, *span, kind) if span else None
    return span


def _avcc_nals(box: bytes) -> set[bytes] | None:
    """SPS and PPS from an AVCDecoderConfigurationRecord."""
    try:
        nals, pos = [], 5
        for mask in (0x1F, 0xFF):  # SPS count (low 5 bits), then PPS count
            count, pos = box[pos] & mask, pos + 1
            for _ in range(count):
                size, = struct.unpack(">H", box[pos:pos + 2])
                nals.append(box[pos + 2:pos + 2 + size])
                pos += 2 + size
    except (IndexError, struct.error):
        return None
    return {n.rstrip(b"\x00") for n in nals if n} or None
