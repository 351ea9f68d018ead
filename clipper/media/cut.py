"""Frame-accurate clips: smart cut (re-encode only the partial GOPs at the ends),
else full re-encode.

Timeline: a time t on `src` is the presentation time ffmpeg's decoder gives a frame, edit lists
honoured, minus the container's start_time — the timeline `ffmpeg -ss t -i src` seeks on. In a
yt-dlp section file (edit list hiding a lead-in) t = 0 is the first *shown* frame; in MPEG-TS
t = 0 is the file's start_time (often 1.4 s of raw PTS). The clip holds exactly the source frames
with start <= t < end; clip time 0 is the first of them, and the audio is cut to the same span.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import statistics
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg

from clipper.domain import CutResult, MediaInfo
from clipper.errors import InvalidInput, PermanentError
from clipper.media import ffrun
from clipper.media.h264 import pic_init_qp
from clipper.media.probe import (
    Frame,
    avc_parameter_sets,
    keyframe_is_idr,
    keyframe_parameter_sets,
    keyframe_poc,
    mp4_frames,
    mp4_video_packets,
    probe_media,
    video_packets,
)
from clipper.steps import in_context, step

log = logging.getLogger(__name__)

_EPS = 1e-3  # timestamps in files are rounded to the container's time base
_TS_FORMATS = ("mpegts", "hls", "applehttp")
_PROFILES = {"High": "high", "Main": "main", "Constrained Baseline": "baseline",
             "Baseline": "baseline"}
ENCODE = {"c:v": "libx264", "preset": "veryfast", "crf": 20, "pix_fmt": "yuv420p"}
AUDIO = {"c:a": "aac", "b:a": "128k", "aac_coder": "fast"}  # "fast": half the time, same bitrate


def _piece(stream: dict[str, Any]) -> dict[str, Any]:
    """Muxer options for a piece. The concat demuxer does not rescale between pieces' time bases,
    and the noise bsf's `tb` is the source's: so every piece keeps the source's time base."""
    num, _, den = str(stream.get("time_base", "1/90000")).partition("/")
    return {"f": "mp4", "video_track_timescale": int(den) if num == "1" else 90000}


class _Unjoinable(Exception):
    """The smart-cut pieces cannot be joined safely; use the full re-encode."""


class _EdgesDiffer(_Unjoinable):
    """Re-encoded edges whose SPS/PPS are not the source's."""


@dataclass(frozen=True)
class CutPlan:
    """Which source frames a clip keeps and how they split into head / copied middle / tail."""

    first: float  # pts of the first kept frame
    stop: float  # pts just after the last kept frame
    frames: int
    k1: float  # first keyframe in the clip (start of the copied middle)
    k2: float  # last keyframe in the clip (start of the re-encoded tail)
    head: int
    mid: int
    tail: int
    reason: str = ""  # why smart cut is impossible ("" when it is possible)
    after_k1: float = 0.0  # the keyframe after k1 in the clip (k2 when there is none)
    before_after_k1: int = 0  # the clip's frames shown before it
    head_pts: tuple[float, ...] = ()  # the head's frames (a GOP at most)


def frame_duration(frames: list[Frame]) -> float:
    """Typical frame duration (median pts step); 1/25 s when unknown."""
    steps = [b.pts - a.pts for a, b in zip(frames, frames[1:], strict=False) if b.pts > a.pts]
    return statistics.median(steps) if steps else 0.04


def plan_cut(frames: list[Frame], start: float, end: float) -> CutPlan:
    """Pure: split the frames with start <= pts < end at the first and last keyframe inside."""
    kept = [f for f in frames if start - _EPS <= f.pts < end - _EPS]
    if not kept:
        raise InvalidInput(f"No video frames between {start:.3f} s and {end:.3f} s.")
    keys = [f.pts for f in kept if f.key]
    k1, k2 = (keys[0], keys[-1]) if keys else (kept[-1].pts, kept[-1].pts)
    mid = sum(k1 - _EPS <= f.pts < k2 - _EPS for f in kept)
    head = sum(f.pts < k1 - _EPS for f in kept)
    after_k1 = keys[1] if len(keys) > 1 else k2
    plan = CutPlan(kept[0].pts, kept[-1].pts + frame_duration(frames), len(kept), k1, k2,
                   head, mid, len(kept) - head - mid, after_k1=after_k1,
                   before_after_k1=sum(f.pts < after_k1 - _EPS for f in kept),
                   head_pts=tuple(f.pts for f in kept[:head]))
    reason = ("clip shorter than a GOP" if mid == 0
              else "" if _dts_ok(frames) else "non-monotonic DTS")
    return CutPlan(**{**plan.__dict__, "reason": reason})


def _dts_ok(frames: list[Frame]) -> bool:
    dts = sorted(f.dts for f in frames)
    return (all(b > a for a, b in zip(dts, dts[1:], strict=False))
            and all(f.dts <= f.pts + _EPS for f in frames))


def smart_blocker(stream: dict[str, Any], info: MediaInfo) -> str:
    """Pure: why this video stream cannot be smart-cut ("" when it can)."""
    if stream.get("codec_name") != "h264":
        return f"video codec is {stream.get('codec_name')}, not H.264"
    if stream.get("pix_fmt") != "yuv420p" or stream.get("profile") not in _PROFILES:
        return f"{stream.get('profile')} {stream.get('pix_fmt')} cannot be matched"
    if stream.get("field_order") not in (None, "progressive", "unknown"):
        return "interlaced video"
    return ""


def x264_args(stream: dict[str, Any]) -> dict[str, Any]:
    """Encoder options meant to reproduce the source's SPS/PPS (checked afterwards)."""
    reorder = int(stream.get("has_b_frames") or 0)
    params = {0: "bframes=0", 1: "b-pyramid=none"}.get(reorder, "b-pyramid=normal")
    # An edge is at most one GOP: a short lookahead (in no parameter set) is as good there, and
    # at 720p it saves ~110 MB per encoder, two of which run per cut.
    params += ":rc-lookahead=5"
    # One thread each: the edges are encoded side by side (and beside Whisper), and x264's frame
    # threads on 50 frames mostly wait on each other (two edges at once: 15% less CPU).
    params += ":threads=1"
    level = int(stream.get("level") or 0)
    args = {**ENCODE, "crf": 23, "profile:v": _PROFILES[stream["profile"]], "x264-params": params}
    return {**args, "level:v": f"{level // 10}.{level % 10}"} if level > 0 else args


def _as_mp4(src: Path, info: MediaInfo, work: Path) -> tuple[Path, MediaInfo]:
    """MPEG-TS is remuxed (stream copy, timeline kept) to MP4 first: seeks in TS landed a frame
    late and mid-GOP; in MP4 they are exact."""
    if not info.format_name.startswith(_TS_FORMATS):
        return src, info
    mp4 = work / "source.mp4"
    inp = ffmpeg.input(str(src))
    streams = ([inp["v:0"]] if info.has_video else []) + ([inp["a:0"]] if info.has_audio else [])
    ffrun.run(ffmpeg.output(*streams, str(mp4), c="copy", f="mp4"), what="remux MPEG-TS to MP4")
    return mp4, probe_media(mp4)


def _encode_video(src: Path, at: float, count: int, enc: dict[str, Any], out: Path,
                  key_after: float | None = None) -> None:
    """Re-encode `count` frames from `at` (callers seek half a frame early: seek points get
    rounded to other time bases; the frame count ends the piece exactly). One decoder thread:
    an edge decodes at most a GOP, and frame threads on so few frames cost more CPU than they
    save time (a 25-frame 720p edge: ~0.45 -> ~0.37 CPU s), CPU the other clips of a burst
    queue for.

    `key_after`: `at` is an IDR keyframe's time minus this (half a frame), in an MP4. Sought
    half a frame early, the demuxer starts at the keyframe before and that GOP is decoded for
    nothing (a tail edge: ~0.07 CPU s); so seek half a frame late (MP4 seeks by presentation
    time, to the keyframe at or before), keep every frame (no accurate seek), drop any shown
    before the keyframe and start the piece at zero. (An open GOP's recovery point decoded
    first lost frames after it: only an IDR is sought to.)"""
    if key_after is None:
        inp = ffmpeg.input(str(src), ss=f"{at:.6f}", threads=1)
        video = inp["v:0"]
    else:
        inp = ffmpeg.input(str(src), ss=f"{at + 2 * key_after:.6f}", noaccurate_seek=None,
                           threads=1)
        video = (inp["v:0"].filter("select", f"gte(t,{-2 * key_after:.6f})")
                 .filter("setpts", "PTS-STARTPTS"))
    stream = ffmpeg.output(video, str(out), **enc, vsync="passthrough", **{"frames:v": count})
    ffrun.run(stream, what="re-encode the clip's edge", yield_cpu=True)


def _middle(src: Path, plan: CutPlan, piece: dict[str, Any], out: Path) -> Any:
    """The copied middle: from the keyframe k1 up to (not including) k2's frame."""
    span, half = plan.k2 - plan.k1, 0.5 * (plan.stop - plan.first) / plan.frames
    drop = f"noise=drop=lt(pts*tb\\,{-half:.6f})+gte(pts*tb\\,{span - half:.6f})"
    inp = ffmpeg.input(str(src), ss=f"{plan.k1:.6f}")
    return ffmpeg.output(inp["v:0"], str(out), t=f"{span + 2:.6f}", **piece,
                         **{"c:v": "copy", "bsf:v": drop})


def _audio(src: Path, info: MediaInfo, first: float, seconds: float, out: Path) -> Any:
    """AAC is copied, not re-encoded (a fifth of the time): the MP4 edit list the copy gets
    trims it to the sample, so decoders play exactly [first, first + seconds), in sync."""
    inp = ffmpeg.input(str(src), ss=f"{first:.6f}")
    codec = {"c:a": "copy"} if info.audio_codec == "aac" else AUDIO
    return ffmpeg.output(inp["a:0"], str(out), t=f"{seconds:.6f}", vn=None, **codec, f="mp4")


def _copy_middle(src: Path, info: MediaInfo, plan: CutPlan, piece: dict[str, Any], mid: Path,
                 audio: Path | None) -> None:
    """The middle, and the audio when there is one, in one ffmpeg (two seeks of the same file):
    each ffmpeg start costs ~0.05 CPU s, and a cut's small steps are half its CPU."""
    outputs = [_middle(src, plan, piece, mid)]
    if audio:
        outputs.append(_audio(src, info, plan.first, plan.stop - plan.first, audio))
    ffrun.run(ffmpeg.merge_outputs(*outputs), what="copy the clip's middle and audio")


def _param_sets(path: Path, at: float, work: Path) -> set[bytes]:
    """SPS and PPS NAL units carried with the keyframe at `at` (Annex B)."""
    raw = work / f"ps-{uuid.uuid4().hex}.h264"
    stream = ffmpeg.output(ffmpeg.input(str(path), ss=f"{at:.6f}")["v:0"], str(raw),
                           **{"c:v": "copy", "bsf:v": "h264_mp4toannexb", "frames:v": 1,
                              "f": "h264"})
    ffrun.run(stream, what="read H.264 parameter sets")
    nals = raw.read_bytes().replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
    return {n.rstrip(b"\x00") for n in nals if n and n[0] & 0x1F in (7, 8)}


#: x264 presets tried, most common first, when looking for settings that reproduce a source's
#: SPS/PPS; results are cached per process, so later clips of the same programme skip the search.
PRESETS = ("veryfast", "medium", "faster", "fast", "superfast", "ultrafast", "slow", "slower")
_encoder_cache: dict[frozenset[bytes], dict[str, Any] | None] = {}  # -> preset, crf, params


def _matching_encoder(src: Path, at: float, stream: dict[str, Any], wanted: set[bytes],
                      work: Path, known: Path | None = None) -> dict[str, Any]:
    """x264 options whose SPS/PPS are byte-identical to the source's (found by 1-frame trials,
    ~0.7 CPU s). Remembered by the process and, when `known` names a folder, in a file there:
    the other workers, and this one after a restart, skip the search for the same programme."""
    key = frozenset(wanted)
    if key not in _encoder_cache:
        found = _known_encoder(known, wanted)
        if found is None:
            found = _search_encoder(src, at, stream, wanted, work)
            if found is not None and known is not None:
                _remember_encoder(known, wanted, found)
        _encoder_cache[key] = found
    found = _encoder_cache[key]
    if found is None:
        raise _Unjoinable("no x264 settings reproduce the source's parameter sets")
    return x264_args(stream) | _piece(stream) | found


def _known_path(folder: Path, wanted: set[bytes]) -> Path:
    return folder / (hashlib.sha1("|".join(sorted(n.hex() for n in wanted)).encode())
                     .hexdigest()[:24] + ".json")


def _known_encoder(folder: Path | None, wanted: set[bytes]) -> dict[str, Any] | None:
    """Settings another process found for these parameter sets; None when there are none."""
    if folder is None:
        return None
    try:
        found = json.loads(_known_path(folder, wanted).read_text())
        return {k: found[k] for k in ("preset", "crf", "x264-params")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _remember_encoder(folder: Path, wanted: set[bytes], found: dict[str, Any]) -> None:
    final = _known_path(folder, wanted)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(found))
        os.replace(tmp, final)
    except OSError as exc:
        log.warning("could not remember the x264 settings found: %s", exc)
    finally:
        tmp.unlink(missing_ok=True)


def _forget_encoder(folder: Path | None, wanted: set[bytes]) -> None:
    """Settings that no longer reproduce the parameter sets (another x264): search again."""
    _encoder_cache.pop(frozenset(wanted), None)
    if folder is not None:
        _known_path(folder, wanted).unlink(missing_ok=True)


#: Cheaper motion search and mode decision for the edges: none of these is written in the
#: SPS/PPS (reference count, B-frames, CABAC, 8x8 transform and weighted prediction are, and
#: stay the preset's), and an edge is at most a GOP. One 49-frame 720p edge: 0.58 -> 0.46 CPU s
#: (decoding from the keyframe is 0.2 of it); the edges are two thirds of a cut's CPU, and in
#: a burst the clips queue for CPU. Used only when a 1-frame trial still matches the source;
#: a lower subme changes the parameter sets of some presets (medium's), so without it next.
QUICK_ANALYSIS = ("me=dia:trellis=0:mixed-refs=0:subme=1", "me=dia:trellis=0:mixed-refs=0")


def _search_encoder(src: Path, at: float, stream: dict[str, Any], wanted: set[bytes],
                    work: Path) -> dict[str, Any] | None:
    qps = [q for q in (pic_init_qp(n) for n in wanted if n[0] & 0x1F == 8) if q is not None]
    base = x264_args(stream) | _piece(stream)
    for preset in PRESETS:
        enc = base | {"preset": preset, "crf": qps[0] if qps else 23}
        if not _trial_matches(src, at, enc, wanted, work):
            continue
        quick = (enc | {"x264-params": f"{enc['x264-params']}:{q}"} for q in QUICK_ANALYSIS)
        chosen = next((e for e in quick if _trial_matches(src, at, e, wanted, work)), enc)
        return {k: chosen[k] for k in ("preset", "crf", "x264-params")}
    return None


def _trial_matches(src: Path, at: float, enc: dict[str, Any], wanted: set[bytes],
                   work: Path) -> bool:
    """Whether one frame encoded with `enc` carries exactly the source's SPS/PPS."""
    trial = work / f"trial-{uuid.uuid4().hex}.mp4"
    _encode_video(src, at, 1, enc, trial)
    return _param_sets(trial, 0.0, work) == wanted


def _join(parts: list[tuple[Path, float]], audio: Path | None, out: Path, work: Path) -> None:
    listing = work / "parts.ffconcat"
    lines = ["ffconcat version 1.0"]
    for path, seconds in parts:
        lines += [f"file '{path.name}'", f"duration {seconds:.6f}"]
    listing.write_text("\n".join(lines) + "\n")
    video = ffmpeg.input(str(listing), f="concat", safe=0)["v:0"]
    streams = [video, ffmpeg.input(str(audio))["a:0"]] if audio else [video]
    ffrun.run(ffmpeg.output(*streams, str(out), c="copy", movflags="+faststart", f="mp4"),
              what="join the clip's pieces")


def _edge_param_sets(edge: Path, work: Path) -> set[bytes]:
    """An edge's SPS/PPS: x264 writes them only in the MP4's avcC box, read in Python; ffmpeg
    when that fails."""
    return avc_parameter_sets(edge) or _param_sets(edge, 0.0, work)


@dataclass(frozen=True)
class EdgeStore:
    """Edges re-encoded by earlier cuts of one source, so that a widened or trimmed clip
    re-encodes only the edge that moved (an edge is two thirds of a cut's CPU, and a burst's
    merges re-cut clips that were ready). A file is named by a hash of what it holds: the
    source, the source time of its first frame, its frame count, the encoder settings and the
    parameter sets; the same frames decode alike from any section of the source that holds
    them, and x264 on one thread is deterministic. Only a shortcut: anything odd is a miss."""

    folder: Path
    source: str
    offset: float
    """Source time of the cut file's t = 0."""

    def path(self, at: float, count: int, enc: dict[str, Any], wanted: set[bytes]) -> Path:
        what = [self.source, round((self.offset + at) * 1000), count,
                sorted(n.hex() for n in wanted), sorted((k, str(v)) for k, v in enc.items())]
        name = hashlib.sha1(json.dumps(what).encode()).hexdigest()[:24]
        return self.folder / f"{name}.mp4"

    @staticmethod
    def fetch(kept: Path, out: Path) -> bool:
        """Put a kept edge at `out` (a hard link); False when there is none."""
        try:
            os.link(kept, out)
        except FileNotFoundError:
            return False
        except OSError:  # another file system
            try:
                shutil.copyfile(kept, out)
            except OSError:
                return False
        return True

    @staticmethod
    def keep(kept: Path, made: Path) -> None:
        """Keep a freshly encoded edge (atomically: a reader never sees half a file)."""
        tmp = kept.with_name(f".{kept.name}.{uuid.uuid4().hex}.tmp")
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(made, tmp)
            except OSError:
                shutil.copyfile(made, tmp)
            os.replace(tmp, kept)
        except OSError as exc:
            log.warning("could not keep a re-encoded edge: %s", exc)
        finally:
            tmp.unlink(missing_ok=True)


def _smart_cut(src: Path, info: MediaInfo, plan: CutPlan, stream: dict[str, Any], out: Path,
               work: Path, store: EdgeStore | None = None,
               known: Path | None = None) -> tuple[float, int]:
    """The clip joined from re-encoded edges (or ones `store` kept), the copied middle and the
    audio; its duration, and how many edges the store lent.

    An open GOP's keyframe (not an IDR) numbers its pictures on from the source's last IDR, and
    a decoder that meets it after the head (numbered from the head's own IDR) drops those it
    takes for late (ffmpeg does, for about half the start times). So for such a keyframe the
    head is cut in two where needed (`head_splits`: the second part's own IDR numbers it so
    that the middle follows it in order), and the join is decoded and counted."""
    blocker = smart_blocker(stream, info) or plan.reason
    if blocker:
        raise _Unjoinable(blocker)
    fdur = (plan.stop - plan.first) / plan.frames
    with step("parameter sets"):
        wanted = (keyframe_parameter_sets(src, plan.k1, info.start_time)
                  or _param_sets(src, plan.k1, work))
    with step("match encoder"):
        enc = _matching_encoder(src, plan.k1 - fdur / 2, stream, wanted, work, known)
    splits, check = [plan.head], False
    if plan.head and not keyframe_is_idr(src, plan.k1, info.start_time):
        order = keyframe_poc(src, plan.k1, info.start_time)
        splits, check = (head_splits(plan.head, *order) if order else [plan.head]), True
    for attempt, second in enumerate(splits):
        try:
            return _smart_pieces(src, info, plan, stream, out, work / f"try{attempt}",
                                 (enc, wanted), second, check, store, known)
        except _OutOfOrder as exc:
            log.info("open GOP: %s", exc)
    raise _Unjoinable("no cut of the head lets a decoder show the open GOP's middle in order")


def head_splits(head: int, lsb: int, max_lsb: int) -> list[int]:
    """Pure: how many of the head's frames to encode as its last part, from an IDR of its own,
    to try in turn before an open-GOP keyframe whose pic_order_cnt_lsb is `lsb` (of
    `max_lsb`). x264 numbers a part's pictures 0, 2, 4…; a decoder places the keyframe after
    them by the distance d of `lsb` from the part's last number, modulo `max_lsb`: in order
    when 0 < d < max_lsb / 2. The whole head first unless that is sure to fail, then the
    longest last part whose d sits in the middle of that range."""
    def distance(n: int) -> int:
        return (lsb - 2 * (n - 1)) % max_lsb

    first = [head] if 0 < distance(head) < max_lsb // 2 else []
    centred = next((n for n in range(head - 1, 0, -1)
                    if max_lsb // 8 <= distance(n) <= 3 * max_lsb // 8), None)
    return first + ([centred] if centred else [])


class _OutOfOrder(_Unjoinable):
    """A decoder drops frames where the head meets an open GOP's middle."""


def _smart_pieces(src: Path, info: MediaInfo, plan: CutPlan, stream: dict[str, Any], out: Path,
                  work: Path, encoder: tuple[dict[str, Any], set[bytes]], second: int,
                  check: bool, store: EdgeStore | None,
                  known: Path | None) -> tuple[float, int]:
    """One try of the smart cut, its head's last `second` frames a piece of their own."""
    enc, wanted = encoder
    work.mkdir(exist_ok=True)
    fdur = (plan.stop - plan.first) / plan.frames
    mid, tail = work / "mid.mp4", work / "tail.mp4"
    audio = work / "audio.m4a" if info.has_audio else None
    heads = [(work / "head.mp4", plan.first, plan.head)] if plan.head else []
    if plan.head and second < plan.head:
        at = plan.head_pts[plan.head - second]
        heads = [(work / "head-a.mp4", plan.first, plan.head - second),
                 (work / "head.mp4", at, second)]
    edges = heads + [(tail, plan.k2, plan.tail)]
    kept = {p: store.path(at, n, enc, wanted) for p, at, n in edges} if store else {}
    lent = {p for p, k in kept.items() if EdgeStore.fetch(k, p)}
    # The pieces are independent: run them side by side (ffmpeg start-up and I/O dominate).
    tasks = [lambda: _copy_middle(src, info, plan, _piece(stream), mid, audio)]
    # The tail starts at a keyframe: sought straight to when it is an IDR (see _encode_video).
    key = {tail: fdur / 2} if keyframe_is_idr(src, plan.k2, info.start_time) else {}
    tasks += [(lambda p=p, a=at, n=n: _encode_video(src, a - fdur / 2, n, enc, p, key.get(p)))
              for p, at, n in reversed(edges) if p not in lent]
    with step("pieces (edges, middle, audio)"):
        _run_all(tasks)
    pieces = [(p, at) for p, at, _ in heads] + [(mid, plan.k1), (tail, plan.k2)]
    try:
        duration = _join_checked(pieces, mid, plan, audio, out, work, wanted, check)
    except _OutOfOrder:
        raise  # the edges are sound, and so are the kept ones lent
    except (_Unjoinable, PermanentError) as exc:
        for p in lent:  # a kept edge that would not join is not lent again
            kept[p].unlink(missing_ok=True)
        if isinstance(exc, _EdgesDiffer) and len(lent) < len(edges):
            _forget_encoder(known, wanted)  # settings remembered from another x264 build
        raise
    for p in kept.keys() - lent:
        EdgeStore.keep(kept[p], p)
    return duration, len(lent)


def _join_checked(pieces: list[tuple[Path, float]], mid: Path, plan: CutPlan,
                  audio: Path | None, out: Path, work: Path, wanted: set[bytes],
                  decode_check: bool = False) -> float:
    """Join the pieces (each with the source time it starts at: the head's, the middle `mid`,
    the tail) once the edges are seen to carry the source's parameter sets; the joined clip's
    duration, after checking its frames (`decode_check`: and that a decoder shows every frame
    up to the middle's second keyframe)."""
    fdur = (plan.stop - plan.first) / plan.frames
    edges = [p for p, _ in pieces if p != mid]
    with step("check edges"):
        if any(_edge_param_sets(edge, work) != wanted for edge in edges):
            raise _EdgesDiffer("re-encoded edge parameter sets differ from the source's")
    # (A middle that lost frames shows in the joined clip's frame count, checked below.)
    ends = [at for _, at in pieces[1:]] + [plan.stop]
    with step("join"):
        _join([(p, end - at) for (p, at), end in zip(pieces, ends, strict=True)], audio, out,
              work)
    with step("check clip"):
        duration = _check(out, plan.frames, plan.stop - plan.first, fdur)
    if decode_check:
        with step("decode the head's join"):
            shown = decoded_frames(out, plan.after_k1 - plan.first - fdur / 2, work)
        if shown != plan.before_after_k1:
            raise _OutOfOrder(f"a decoder shows {shown} of the first {plan.before_after_k1} "
                              "frames, the head's and the middle's first GOP")
    return duration


def decoded_frames(path: Path, seconds: float, work: Path) -> int:
    """How many video frames a decoder shows in the first `seconds` of `path`."""
    listing = work / f"frames-{uuid.uuid4().hex}.txt"
    stream = ffmpeg.output(ffmpeg.input(str(path))["v:0"], str(listing), t=f"{seconds:.6f}",
                           f="framecrc")
    ffrun.run(stream, what="decode the clip's first frames")
    lines = listing.read_text().splitlines()
    return sum(1 for line in lines if line and not line.startswith("#"))


def _run_all(tasks: list[Any], at_once: int | None = None) -> list[Any]:
    """Run callables in threads (at most `at_once` together, in list order); re-raise the first
    failure."""
    with ThreadPoolExecutor(max_workers=min(len(tasks), at_once or len(tasks))) as pool:
        return [f.result() for f in [pool.submit(in_context(t)) for t in tasks]]


def _check(out: Path, frames: int, seconds: float, fdur: float) -> float:
    """ffmpeg can exit 0 with a truncated or broken file: verify frames, DTS and duration;
    returns the file's duration. Read in Python (`mp4_frames` checks too that the file holds
    every sample its tables list), ffprobe when it cannot."""
    found = mp4_frames(out)
    if found is None:
        listed = video_packets(out)
        found = (listed.frames, listed.duration)
    got, duration = found
    if len(got) != frames or not _dts_ok(got):
        raise _Unjoinable(f"joined clip has {len(got)} frames, expected {frames}")
    if abs(got[-1].pts + fdur - got[0].pts - seconds) > fdur + _EPS:
        raise _Unjoinable(f"joined clip lasts {got[-1].pts + fdur:.3f} s, expected {seconds:.3f} s")
    return duration


def _reencode(src: Path, info: MediaInfo, plan: CutPlan | None, start: float, end: float,
              out: Path) -> float:
    first, seconds = (plan.first, plan.stop - plan.first) if plan else (start, end - start)
    inp = ffmpeg.input(str(src), ss=f"{first:.6f}")
    streams = ([inp["v:0"]] if info.has_video else []) + ([inp["a:0"]] if info.has_audio else [])
    opts: dict[str, Any] = {"t": f"{seconds:.6f}", **AUDIO, "movflags": "+faststart", "f": "mp4"}
    if info.has_video:
        opts |= {**ENCODE, "vsync": "passthrough"} | ({"frames:v": plan.frames} if plan else {})
    ffrun.run(ffmpeg.output(*streams, str(out), **opts), what="re-encode the clip", yield_cpu=True)
    if plan:
        return _check(out, plan.frames, seconds, seconds / plan.frames)
    duration = probe_media(out).duration
    if duration < seconds - 0.1:
        raise PermanentError(f"The clip came out short ({duration:.2f} s of {seconds:.2f} s).")
    return duration


def _frame_seconds(info: MediaInfo) -> float:
    """One frame's length (a conservative 0.05 s where the rate is unknown)."""
    return 1.0 / info.fps if info.fps > 0 else 0.05


def cut_clip(src: Path, start: float, end: float, out: Path,
             info: MediaInfo | None = None, edges: EdgeStore | None = None,
             encoders: Path | None = None) -> CutResult:
    """Cut [start, end) of `src` (seconds on its presentation timeline, see module doc) to an MP4.

    H.264/AAC with +faststart, within one frame of the requested times. Smart cut when the
    source allows it, else a full re-encode. Written to a temp name in out's folder, then renamed.
    `info` is `probe_media(src)` when the caller has it already; `edges` keeps the re-encoded
    edges for later cuts of the same source, and lends them the ones it kept; `encoders` is a
    folder where the x264 settings that reproduce a source's parameter sets are remembered.
    """
    src, out = Path(src), Path(out)
    if info is None:
        with step("probe"):
            info = probe_media(src)
    if -_frame_seconds(info) <= start < 0:
        # A section fetched from exactly the clip's start shows its first frame up to a frame
        # after it (the first at or after the start): that frame is where the clip begins.
        start = 0.0
    if not 0 <= start < end or start >= info.duration:
        raise InvalidInput(f"Cannot cut {start:.2f}–{end:.2f} s "
                           f"from media lasting {info.duration:.2f} s.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex}.part.mp4")
    method, duration, lent = "reencode", 0.0, 0
    try:
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=".cut-") as work:
            with step("remux"):
                src, info = _as_mp4(src, info, Path(work))
            # A long recording: list packets only around the clip (keyframes up to 20 s apart).
            window = (start - 20.0, end + 20.0) if info.duration > end - start + 60 else None
            plan, stream = None, {}
            if info.has_video:
                with step("list frames"):
                    listed = (mp4_video_packets(src, info)
                              or video_packets(src, info.start_time, window))
                    plan, stream = plan_cut(listed.frames, start, end), listed.stream
            if plan is not None:
                try:
                    duration, lent = _smart_cut(src, info, plan, stream, tmp, Path(work), edges,
                                                encoders)
                    method = "smart"
                except (_Unjoinable, PermanentError) as exc:
                    log.info("smart cut of %s not possible (%s); re-encoding", src.name, exc)
            if method == "reencode":
                with step("re-encode"):
                    duration = _reencode(src, info, plan, start, min(end, info.duration), tmp)
        os.replace(tmp, out)
    except _Unjoinable as exc:
        raise PermanentError(f"Could not cut {src.name} accurately: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return CutResult(out, method, duration, lent)
