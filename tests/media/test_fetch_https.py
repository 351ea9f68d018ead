"""fetch_section over https (MP4 and HLS) through the guard proxy (yt-dlp: its CONNECT tunnel;
ffmpeg: plain http to its relay, which makes the TLS request), against a loopback TLS server with
a certificate made here; an untrusted certificate is refused clearly on either path."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
from mediacheck import assert_frame_exact

from clipper.errors import PermanentError
from clipper.media.cut import cut_clip
from clipper.media.fetch import fetch_section
from clipper.net.guard import GuardProxy
from testmedia.mediagen import serve_dir

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(certificate, key, CA bundle = the usual roots + this certificate)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key, bundle = folder / "cert.pem", folder / "key.pem", folder / "bundle.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    bundle.write_text(Path(certifi.where()).read_text() + cert.read_text())
    return cert, key, bundle


@pytest.fixture(scope="module")
def https_server(tls_files: tuple[Path, Path, Path], media_dir: Path, gop2: Path,
                 hls: Path) -> Iterator[tuple[str, list[str]]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files[0], tls_files[1])
    with serve_dir(media_dir, tls=context) as served:
        yield served


@pytest.fixture
def trusted(tls_files: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the test certificate the way a deployment trusts its roots: yt-dlp and the guard's
    relay (ffmpeg's requests) read certifi's bundle, Python's urllib SSL_CERT_FILE."""
    monkeypatch.setattr(certifi, "where", lambda: str(tls_files[2]))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[2]))


@pytest.mark.parametrize(("path", "source"), [("gop2.mp4", "gop2"), ("hls/index.m3u8", "hls")])
def test_https_section_through_the_guard_proxy(trusted: None, https_server: tuple[str, list[str]],
                                               request: pytest.FixtureRequest, tmp_path: Path,
                                               path: str, source: str) -> None:
    """The HLS rendition is its own reference: its timeline is not the MP4's to the frame."""
    base, requested = https_server
    before = len(requested)
    with GuardProxy(["127.0.0.1"]) as proxy:
        sec = fetch_section(f"{base}/{path}", 10.33, 14.71, dest_dir=tmp_path, pad=1.0,
                            proxy=proxy.url)
        assert proxy.unsafe_error() is None
    assert len(requested) > before  # the TLS server really served it
    clip = cut_clip(sec.path, 10.33 - sec.offset, 14.71 - sec.offset, tmp_path / "clip.mp4")
    assert_frame_exact(clip.path, request.getfixturevalue(source), 10.33, 14.71)


def test_untrusted_certificate_is_refused_with_a_clear_message(
        https_server: tuple[str, list[str]], tmp_path: Path) -> None:
    base, _ = https_server
    with GuardProxy(["127.0.0.1"]) as proxy, pytest.raises(PermanentError) as caught:
        fetch_section(f"{base}/gop2.mp4", 10.0, 12.0, dest_dir=tmp_path, pad=1.0, proxy=proxy.url,
                      tries=1)
    assert "certificate is not trusted (self-signed certificate)" in caught.value.message


@pytest.mark.parametrize("path", ["gop2.mp4", "hls/index.m3u8"])
def test_certificate_is_checked_on_ffmpegs_path_too(
        trusted: None, https_server: tuple[str, list[str]], tmp_path: Path, path: str) -> None:
    """yt-dlp trusts the server here, the guard (which makes ffmpeg's requests) does not."""
    base, requested = https_server
    before = len(requested)
    with GuardProxy(["127.0.0.1"], cafile=certifi.core.where()) as guard, \
            pytest.raises(PermanentError) as caught:
        fetch_section(f"{base}/{path}", 10.0, 12.0, dest_dir=tmp_path, pad=1.0, proxy=guard,
                      tries=1)
    assert caught.value.message == ("The TLS certificate of 127.0.0.1 is not trusted "
                                    "(self-signed certificate).")
    assert len(requested) > before  # yt-dlp got through: the refusal was on ffmpeg's path
    assert not list(tmp_path.glob("section-*"))
