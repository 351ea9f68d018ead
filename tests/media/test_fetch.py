"""fetch_section over loopback HTTP (MP4 and HLS): exact offset, only the section, typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from mediacheck import assert_frame_exact

from clipper.errors import PermanentError, TransientError
from clipper.media.cut import cut_clip
from clipper.media.fetch import (
    DIRECT_PROTOCOLS,
    GUARDED_PROTOCOLS,
    classify_error,
    fetch_section,
    local_section,
    ydl_options,
)
from clipper.media.probe import probe_media


def _fetch_and_cut(url: str, source: Path, start: float, end: float, pad: float, tmp: Path,
                   lead: float = 0.0) -> Path:
    """`lead`: seconds the section may begin earlier (MPEG-TS: see the .ts test)."""
    sec = fetch_section(url, start, end, dest_dir=tmp / "src", pad=pad)
    assert sec.path.parent == tmp / "src" and sec.duration < end - start + 2 * pad + 2.5 + lead
    assert sec.info == probe_media(sec.path)  # what the fetch probed, for the cut
    clip = cut_clip(sec.path, start - sec.offset, end - sec.offset, tmp / "clip.mp4", sec.info)
    assert_frame_exact(clip.path, source, start, end)
    return sec.path


def test_mp4_section_fetch_then_cut_is_exact(server, gop2: Path, tmp_path: Path) -> None:
    base, _ = server
    path = _fetch_and_cut(f"{base}/gop2.mp4", gop2, 10.33, 14.71, 1.5, tmp_path)
    assert path.stat().st_size < gop2.stat().st_size / 2  # only a section came down


def test_hls_section_fetches_few_segments_and_is_exact(server, hls: Path, tmp_path: Path) -> None:
    base, requested = server
    before = len(requested)
    _fetch_and_cut(f"{base}/hls/index.m3u8", hls, 13.37, 16.01, 1.0, tmp_path)
    segments = [p for p in requested[before:] if p.endswith(".ts")]
    assert 0 < len(segments) <= 4, segments  # of 12 segments


def test_section_near_the_start(server, hls: Path, tmp_path: Path) -> None:
    base, _ = server
    _fetch_and_cut(f"{base}/hls/index.m3u8", hls, 0.53, 3.01, 2.0, tmp_path)


def test_section_a_moment_after_the_start_keeps_its_picture(server, hls: Path,
                                                            tmp_path: Path) -> None:
    """ffmpeg's HLS reader seeking to 0.05 s (before the first frame's decode time is done)
    dropped the whole picture: such a section is read from the start."""
    base, _ = server
    _fetch_and_cut(f"{base}/hls/index.m3u8", hls, 0.55, 1.25, 0.5, tmp_path)


def test_fmp4_hls_section_reads_few_segments_and_is_exact(server, fmp4_hls: Path,
                                                         tmp_path: Path) -> None:
    """ffmpeg 5.1 reads no packet of fMP4 segments after -ss: Clipper reads the pieces. Its
    times are ffmpeg's, as for other HLS: from the earliest stream's start (here the sound's,
    22 ms before the first picture)."""
    base, requested = server
    before = len(requested)
    _fetch_and_cut(f"{base}/fmp4/index.m3u8", fmp4_hls, 13.37, 16.01, 1.0, tmp_path)
    got = requested[before:]
    segments = sorted(p for p in got if p.endswith(".m4s"))
    # The section's (12-18 s) and the first (time 0), of 12.
    assert segments[0] == "/fmp4/seg0000.m4s" and 3 <= len(segments) <= 6, segments
    assert "/fmp4/init.mp4" in got
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and "section-" not in p.name
                and p.name != "clip.mp4"]  # the pieces went with the fetch


@pytest.mark.parametrize("start", [0.0, 0.53, 21.9])
def test_fmp4_hls_at_the_programmes_ends(server, fmp4_hls: Path, tmp_path: Path,
                                         start: float) -> None:
    base, _ = server
    _fetch_and_cut(f"{base}/fmp4/index.m3u8", fmp4_hls, start, min(24.0, start + 2.5), 0.5,
                   tmp_path)


def test_fmp4_hls_of_44_1_khz_sound_counts_time_as_ffmpegs_hls_reader(
        server, media_dir: Path, tmp_path: Path) -> None:
    """At 44.1 kHz the MP4 reader starts the sound 23 ms before ffmpeg's HLS reader does (its
    priming): time 0 is the HLS reader's, or clips come a frame early."""
    import subprocess

    from testmedia.mediagen import make_hls

    src = media_dir / "cd.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=320x180:rate=30000/1001", "-f", "lavfi", "-i",
                    "sine=frequency=300:sample_rate=44100", "-t", "12", "-c:v", "libx264",
                    "-g", "60", "-bf", "3", "-c:a", "aac", "-shortest", str(src)], check=True)
    playlist = make_hls(src, media_dir / "cd", hls_time=6, fmp4=True)
    base, _ = server
    for start in (2.649, 3.12, 6.51):
        _fetch_and_cut(f"{base}/cd/index.m3u8", playlist, start, start + 1.3, 0.5,
                       tmp_path / str(start))


def test_fmp4_hls_in_one_file_by_byte_ranges(server, fmp4_single: Path, tmp_path: Path) -> None:
    base, _ = server
    _fetch_and_cut(f"{base}/fmp4single/index.m3u8", fmp4_single, 9.21, 12.87, 1.0, tmp_path)


def test_fmp4_hls_with_picture_and_sound_in_separate_renditions(server, fmp4_renditions: Path,
                                                                tmp_path: Path) -> None:
    base, requested = server
    before = len(requested)
    path = _fetch_and_cut(f"{base}/renditions/master.m3u8", fmp4_renditions, 7.77, 10.2, 1.0,
                          tmp_path)
    info = probe_media(path)
    assert info.has_video and info.has_audio
    assert {"/renditions/init_0.mp4", "/renditions/init_1.mp4"} <= set(requested[before:])
    sound = probe_media(tmp_path / "clip.mp4")
    assert sound.has_audio and abs(sound.duration - 2.43) < 0.1


def test_fmp4_hls_whose_extinfs_understate_is_widened(server, fmp4_hls: Path,
                                                      tmp_path: Path) -> None:
    """Rounded EXTINFs (here 1 s for 2 s segments) point at the wrong segments: what came
    is checked against the section, and more segments read, so the clip is still exact."""
    base, _ = server
    lying = fmp4_hls.parent / "lying.m3u8"
    lying.write_text(fmp4_hls.read_text().replace("#EXTINF:2.000000,", "#EXTINF:1,"))
    _fetch_and_cut(f"{base}/fmp4/lying.m3u8", fmp4_hls, 9.33, 11.1, 1.0, tmp_path)


@pytest.mark.services
def test_fmp4_hls_through_the_guard(server, fmp4_hls: Path, tmp_path: Path) -> None:
    """Every piece is asked of the guard's relay, as ffmpeg's segments are: a playlist whose
    init segment lies on an address the guard refuses fails, and says so."""
    from clipper.net.guard import GuardProxy

    base, _ = server
    hostile = fmp4_hls.parent / "hostile.m3u8"
    hostile.write_text(fmp4_hls.read_text().replace('URI="init.mp4"',
                                                    'URI="http://127.0.0.2:9/init.mp4"'))
    with GuardProxy(["127.0.0.1"]) as guard:
        sec = fetch_section(f"{base}/fmp4/index.m3u8", 5.1, 7.7, dest_dir=tmp_path / "src",
                            pad=0.5, proxy=guard)
        with pytest.raises(PermanentError, match=r"must not go: .*127\.0\.0\.2"):
            fetch_section(f"{base}/fmp4/hostile.m3u8", 5.1, 7.7, dest_dir=tmp_path / "no",
                          pad=0.5, proxy=guard, tries=1)
    clip = cut_clip(sec.path, 5.1 - sec.offset, 7.7 - sec.offset, tmp_path / "clip.mp4", sec.info)
    assert_frame_exact(clip.path, fmp4_hls, 5.1, 7.7)


@pytest.mark.services
def test_dash_section_through_the_guard_and_without(server, dash: Path, tmp_path: Path) -> None:
    """DASH's picture and sound are two formats; each URL goes to the guard's relay once (a
    relay URL relayed again is a request to the guard itself, which it refuses)."""
    from clipper.net.guard import GuardProxy

    base, requested = server
    before = len(requested)
    _fetch_and_cut(f"{base}/dash/manifest.mpd", dash, 11.21, 13.9, 1.0, tmp_path / "direct")
    with GuardProxy(["127.0.0.1"]) as guard:
        sec = fetch_section(f"{base}/dash/manifest.mpd", 3.3, 6.1, dest_dir=tmp_path / "src",
                            pad=0.5, proxy=guard)
        assert guard.unsafe_error() is None
    clip = cut_clip(sec.path, 3.3 - sec.offset, 6.1 - sec.offset, tmp_path / "clip.mp4", sec.info)
    assert_frame_exact(clip.path, dash, 3.3, 6.1)
    assert sec.info.has_audio and any("chunk-stream1" in p for p in requested[before:])


@pytest.mark.parametrize(("name", "start"), [("gop2.ts", 13.37), ("gop2.ts", 7.01),
                                             ("gop10.ts", 15.01), ("gop10.ts", 21.3)])
def test_mpeg_ts_file_section_is_exact(server, media_dir: Path, tmp_path: Path, name: str,
                                       start: float) -> None:
    """A .ts file has no keyframe index: ffmpeg's copy began the picture at the keyframe after
    the seek (a whole 10 s GOP missing), and its TS muxer moved the section's timestamps by
    0.2-0.4 s. The section is written as MP4 and read from earlier while its picture is late."""
    base, requested = server
    before = len(requested)
    path = _fetch_and_cut(f"{base}/{name}", media_dir / name, start, start + 2.6, 1.0, tmp_path,
                          lead=10.0 if name == "gop10.ts" else 2.5)
    assert path.suffix == ".mp4"
    tries = requested[before:].count(f"/{name}")
    assert tries >= 1 and (name == "gop2.ts" or tries >= 2), requested[before:]


@pytest.mark.parametrize(("name", "source"), [("blob", "gop2.mp4"), ("blobts", "gop2.ts")])
def test_a_file_without_extension_or_media_type_is_named_by_its_bytes(
        server, media_dir: Path, tmp_path: Path, name: str, source: str) -> None:
    """No extension, served as application/octet-stream: yt-dlp names it "unknown_video",
    which ffmpeg cannot write; ffprobe reads what it is."""
    import shutil

    shutil.copy(media_dir / source, media_dir / name)
    base, _ = server
    path = _fetch_and_cut(f"{base}/{name}", media_dir / source, 9.37, 11.9, 1.0, tmp_path,
                          lead=2.5 if source.endswith(".ts") else 0.0)
    assert path.suffix == ".mp4"


def test_a_file_of_no_media_kind_is_refused_clearly(server, media_dir: Path,
                                                    tmp_path: Path) -> None:
    (media_dir / "notmedia").write_bytes(b"\x00\x01 not a video at all " * 400)
    base, _ = server
    with pytest.raises(PermanentError, match="of no kind Clipper can cut"):
        fetch_section(f"{base}/notmedia", 1, 2, dest_dir=tmp_path, pad=0, tries=1)


@pytest.mark.parametrize(("name", "start"), [("hls/index.m3u8", 5.3), ("fmp4/index.m3u8", 6.48),
                                             ("gop2.ts", 5.64)])
def test_a_section_without_pad_still_holds_the_clips_first_frame(
        server, media_dir: Path, tmp_path: Path, name: str, start: float) -> None:
    """pad 0: the section's first frame is the first at or after the start, up to a frame
    after it (the cut begins there, not "before the media"), and an MPEG-TS section whose
    picture begins at the next keyframe, 0.36 s late, is read again from earlier."""
    base, _ = server
    _fetch_and_cut(f"{base}/{name}", media_dir / name, start, start + 1.5, 0.0, tmp_path,
                   lead=2.5 if name.endswith(".ts") else 0.0)


@pytest.mark.parametrize(("start", "pad"), [(25.37, 1.0), (29.01, 2.0), (24.3, 0.5)])
def test_a_section_after_a_discontinuity_is_placed_by_the_playlist(
        server, discontinuous: tuple[Path, Path], tmp_path: Path, start: float,
        pad: float) -> None:
    """Timestamps start again after EXT-X-DISCONTINUITY: ffmpeg's reader lost every packet
    ("no playable media"); the span's segments are read here, placed by their EXTINFs."""
    _, second = discontinuous
    base, requested = server
    before = len(requested)
    sec = fetch_section(f"{base}/disc/index.m3u8", start, start + 2.2, dest_dir=tmp_path / "src",
                        pad=pad)
    clip = cut_clip(sec.path, start - sec.offset, start + 2.2 - sec.offset,
                    tmp_path / "clip.mp4", sec.info)
    assert_frame_exact(clip.path, second, start - 24, start - 24 + 2.2)
    assert not [p for p in requested[before:] if p.startswith("/disc/a/") and p != "/disc/a/"]


def test_a_section_before_a_discontinuity_is_read_as_ever(server, media_dir: Path,
                                                         tmp_path: Path) -> None:
    base, _ = server
    _fetch_and_cut(f"{base}/disc/index.m3u8", media_dir / "disc" / "a" / "index.m3u8", 13.37,
                   15.5, 1.0, tmp_path)


def test_404_is_permanent_and_readable(server, tmp_path: Path) -> None:
    base, _ = server
    with pytest.raises(PermanentError) as err:
        fetch_section(f"{base}/missing.mp4", 1, 2, dest_dir=tmp_path, pad=0)
    assert "404" in err.value.message and "Traceback" not in str(err.value)


def test_unsupported_url_is_permanent(server, media_dir: Path, tmp_path: Path) -> None:
    (media_dir / "page.html").write_text("<html><body>No video here</body></html>")
    base, _ = server
    with pytest.raises(PermanentError, match="Unsupported URL"):
        fetch_section(f"{base}/page.html", 1, 2, dest_dir=tmp_path, pad=0)


@pytest.mark.parametrize("path", ["hls/index.m3u8", "gop2.mp4", "fmp4/index.m3u8"])
def test_section_beyond_the_end_says_the_duration(server, tmp_path: Path, path: str) -> None:
    base, _ = server
    with pytest.raises(PermanentError, match=r"lasts only 24\.\d s"):
        fetch_section(f"{base}/{path}", 100, 110, dest_dir=tmp_path, pad=1)


def test_503_is_retried_then_served(server, tmp_path: Path) -> None:
    base, requested = server
    sec = fetch_section(f"{base}/flaky/gop2.mp4", 5, 7, dest_dir=tmp_path, pad=0, tries=3)
    assert sec.duration > 1.5
    assert requested.count("/flaky/gop2.mp4") >= 3


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    with pytest.raises(TransientError):
        fetch_section("http://127.0.0.1:9/x.mp4", 1, 2, dest_dir=tmp_path, pad=0, tries=1)


def test_proxy_is_used_even_when_no_proxy_lists_the_host(server, tmp_path: Path,
                                                         monkeypatch) -> None:
    base, _ = server
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with pytest.raises(TransientError):  # the "proxy" port is closed: traffic went to it
        fetch_section(f"{base}/gop2.mp4", 1, 2, dest_dir=tmp_path, pad=0,
                      proxy="http://127.0.0.1:9", tries=1)
    import os
    assert os.environ["no_proxy"] == "127.0.0.1,localhost"  # restored afterwards


@pytest.mark.parametrize("url", ["http://cdn.example/a.mp4", "https://cdn.example/live.m3u8"])
def test_ffmpeg_behind_the_guard_speaks_only_plain_http(tmp_path: Path, url: str) -> None:
    """https sources too: the guard's relay makes the TLS request and checks the certificate."""
    opts = ydl_options((1, 2), tmp_path, "http://127.0.0.1:3128", url)
    args = opts["external_downloader_args"]["ffmpeg_i"]
    whitelist = args[args.index("-protocol_whitelist") + 1].split(",")
    assert whitelist == GUARDED_PROTOCOLS.split(",") == ["http", "tcp", "crypto"]
    assert args[args.index("-http_proxy") + 1] == "http://127.0.0.1:3128" and opts["proxy"] == "http://127.0.0.1:3128"
    assert "-tls_verify" not in args and opts["skip_unavailable_fragments"] is False


def test_ffmpeg_without_a_guard_checks_certificates_of_https_sources(tmp_path: Path) -> None:
    """ffmpeg's default is to trust any certificate; yt-dlp's segment downloads must not."""
    import certifi

    args = ydl_options((1, 2), tmp_path, None, "https://cdn.example/live.m3u8")[
        "external_downloader_args"]["ffmpeg_i"]
    assert args[args.index("-tls_verify") + 1] == "1"
    assert args[args.index("-ca_file") + 1] == certifi.where()
    whitelist = args[args.index("-protocol_whitelist") + 1].split(",")
    assert whitelist == DIRECT_PROTOCOLS.split(",") and "httpproxy" not in whitelist


def test_classify_error() -> None:
    busy = classify_error("ERROR: [generic] x: Unable to download webpage: HTTP Error 503")
    assert isinstance(busy, TransientError)
    assert isinstance(classify_error("ERROR: [generic] x: HTTP Error 410: Gone"), PermanentError)
    report = ("; please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , "
              "filling out the appropriate issue template.")
    not_found = "Unable to download webpage: HTTP Error 404: Not Found"
    gone = classify_error(f"ERROR: [generic] {not_found}" + report)
    assert gone.message == f"The source cannot be fetched: {not_found}"
    cert = classify_error("ERROR: [generic] Unable to download webpage: "
                          "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                          "certificate has expired (_ssl.c:1006)" + report)
    assert isinstance(cert, PermanentError)
    assert cert.message == "The source's TLS certificate is not trusted (certificate has expired)."


def test_local_section(gop2: Path) -> None:
    sec = local_section(gop2)
    assert (sec.path, sec.offset) == (gop2, 0.0) and abs(sec.duration - 24) < 0.1


@pytest.mark.services
def test_hls_with_a_hostile_segment_uri_is_refused(tmp_path):
    """Even outside the section: the guard refuses the whole playlist. Changing playlists:
    tests/net/test_relay.py."""
    from clipper.errors import PermanentError
    from clipper.media.fetch import fetch_section
    from clipper.net.guard import GuardProxy
    from testmedia.mediagen import make_hls, make_video, serve_dir

    src = make_video(tmp_path / "v.mp4", 6)
    playlist = make_hls(src, tmp_path / "site")
    text = playlist.read_text().replace("seg0001.ts", "httpproxy://127.0.0.2:9/seg0001.ts")
    playlist.write_text(text)
    with serve_dir(tmp_path / "site") as (base, _), GuardProxy(["127.0.0.1"]) as guard, \
            pytest.raises(PermanentError, match=r"must not go: .* names httpproxy://127\.0\.0\.2"):
        fetch_section(f"{base}/index.m3u8", 0, 3, dest_dir=tmp_path / "out", pad=0, proxy=guard)


def test_youtube_dl_has_yt_dlps_default_extractors() -> None:
    """Every fetch makes a YoutubeDL; yt-dlp re-derives its ~1,750 default extractors for each
    (~60 ms of CPU), Clipper once per process — the same ones, in the same order, so a link
    goes to the extractor plain yt-dlp would pick."""
    import yt_dlp

    from clipper.media.fetch import youtube_dl

    plain, ours = yt_dlp.YoutubeDL({"quiet": True}), youtube_dl({"quiet": True})
    assert list(ours._ies) == list(plain._ies) and len(plain._ies) > 1000
    assert all(ours._ies[k] is plain._ies[k] for k in plain._ies)
    assert list(ours._ies_instances) == list(plain._ies_instances)


def test_warm_up_compiles_every_extractors_url_pattern() -> None:
    """A worker compiles yt-dlp's URL patterns when it starts, not on a volunteer's first flag
    (a link reaches the generic extractor only after every other pattern said no)."""
    from clipper.media.fetch import _default_extractors, warm_up

    warm_up()
    compiled = [ie for ie in _default_extractors() if "_VALID_URL_RE" in ie.__dict__]
    with_pattern = [ie for ie in _default_extractors() if ie._VALID_URL]
    assert len(compiled) == len(with_pattern) > 1000
