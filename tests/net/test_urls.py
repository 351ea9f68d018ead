"""clipper.net.urls: the source key (normalize_url) and the fetch-safety check (check_url)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from clipper.errors import InvalidInput, UnsafeURL
from clipper.net.urls import address_problem, check_url, is_allowed_address, normalize_url, vet_host

# ---------------------------------------------------------------- normalize_url

VID = "dQw4w9WgXcQ"
WATCH = f"https://www.youtube.com/watch?v={VID}"


@pytest.mark.parametrize(("url", "key"), [
    (f"https://youtu.be/{VID}", WATCH),
    (f"https://youtu.be/{VID}?si=abc123&t=42", WATCH),
    (f"http://youtube.com/watch?v={VID}&t=1m30s&feature=share", WATCH),
    (f"https://m.youtube.com/watch?feature=youtu.be&v={VID}", WATCH),
    (f"https://www.youtube.com/shorts/{VID}?feature=share", WATCH),
    (f"https://www.youtube.com/live/{VID}?si=xyz", WATCH),
    (f"https://www.youtube.com/embed/{VID}", WATCH),
    (f"HTTPS://WWW.YouTube.com/watch?v={VID}#t=10", WATCH),
    # not a video: left as a generic URL
    ("https://www.youtube.com/@SomeChannel/", "https://www.youtube.com/@SomeChannel/"),
    ("HTTP://Example.ORG:80/", "http://example.org"),
    ("https://example.org:443/a/b?z=1&a=2#frag", "https://example.org/a/b?a=2&z=1"),
    ("https://example.org:8443/v", "https://example.org:8443/v"),
    ("https://example.org/v?utm_source=x&UTM_medium=y&fbclid=1&gclid=2&id=7", "https://example.org/v?id=7"),
    ("https://example.org/v/?b=&a=1", "https://example.org/v/?a=1&b="),
    ("  https://example.org./x  ", "https://example.org/x"),
    ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
])
def test_normalize_url(url: str, key: str) -> None:
    assert normalize_url(url) == key


def test_normalize_url_is_idempotent() -> None:
    for url in (f"https://youtu.be/{VID}?t=3", "HTTP://a.example:80/p?utm_x=1&b=2&a=1"):
        once = normalize_url(url)
        assert normalize_url(once) == once


def test_normalize_url_keeps_different_sources_apart() -> None:
    assert normalize_url("https://example.org/a?id=1") != normalize_url("https://example.org/a?id=2")
    assert normalize_url("https://youtu.be/aaaaaaaaaaa") != normalize_url(f"https://youtu.be/{VID}")


# ---------------------------------------------------------------- fake DNS

def fake_dns(table: dict[str, list[str]]):
    """A getaddrinfo stand-in: name -> addresses; unknown names fail like the real one."""
    calls: list[str] = []

    def resolve(host, port, *args, **kwargs):
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port or 0)) for a in table[host]]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


DNS = fake_dns({
    "news.example": ["93.184.216.34"],
    "v6news.example": ["2606:4700::6810:85e5"],
    "intranet.example": ["10.0.0.5"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": ["93.184.216.34", "192.168.1.20"],
    "newsroom.lan": ["192.168.1.5"],
    "rebind.example": ["127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
})


# ---------------------------------------------------------------- check_url: bad input

@pytest.mark.parametrize(("url", "says"), [
    ("", "not a valid link"),
    ("ftp://example.org/video.mp4", "'ftp'"),
    ("file:///etc/passwd", "'file'"),
    ("gopher://example.org/", "'gopher'"),
    ("javascript:alert(1)", "no http(s)://"),
    ("youtu.be/dQw4w9WgXcQ", "no http(s)://"),
    ("http:///path-only", "no host"),
    ("http://exa mple.org/", "spaces"),
    ("http://127.0.0.2\\@example.org/", "backslashes"),
    ("http://example.org:99999/", "invalid port"),
    ("http://example.org:http/", "invalid port"),
    ("https://example.org/" + "a" * 5000, "too long"),
])
def test_check_url_refuses_malformed(url: str, says: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_url(url, [], resolve=DNS)
    assert not isinstance(info.value, UnsafeURL)
    assert says in info.value.message


def test_scheme_message_names_the_allowed_schemes() -> None:
    with pytest.raises(InvalidInput) as info:
        check_url("rtmp://live.example/app", [], resolve=DNS)
    assert "http:// and https://" in info.value.message
    assert "https://" in info.value.hint


def test_unresolvable_host_is_invalid_input_naming_the_host() -> None:
    with pytest.raises(InvalidInput) as info:
        check_url("https://no-such-host.example/v", [], resolve=DNS)
    assert not isinstance(info.value, UnsafeURL)
    assert "'no-such-host.example' could not be found" in info.value.message
    assert info.value.hint


# ---------------------------------------------------------------- check_url: addresses

UNSAFE = [
    ("http://10.1.2.3/x", "a private network address (10.1.2.3)"),
    ("http://172.16.9.9/", "private network"),
    ("http://192.168.0.1/", "private network"),
    ("http://127.0.0.1:8000/", "loopback"),
    ("http://127.255.255.254/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://100.64.0.1/", "shared (carrier-grade NAT)"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250:1900/", "multicast"),
    ("http://255.255.255.255/", "private network"),
    ("http://240.0.0.1/", "private network"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://192.0.0.9/", "IETF protocol"),
    ("http://[::1]/", "loopback"),
    ("http://[::]/", "unspecified"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private network"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[::ffff:127.0.0.1]/", "loopback address in IPv6 form"),
    ("http://[::ffff:a00:1]/", "private network address in IPv6 form"),
    ("http://[2002:7f00:1::]/", "loopback address in IPv6 form"),  # 6to4
    ("http://[64:ff9b::a00:1]/", "private network address in IPv6 form"),  # NAT64
    ("http://[::7f00:1]/", "loopback address in IPv6 form"),  # IPv4-compatible
    # odd spellings of 127.0.0.1 that the OS accepts
    ("http://2130706433/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://0x7f000001:8080/", "loopback"),
    ("http://0xa.1/", "private network"),
    # names resolving to such addresses
    ("https://intranet.example/v",
     "private network address (intranet.example resolves to 10.0.0.5)"),
    ("https://metadata.example/", "link-local"),
    ("https://mixed.example/v", "192.168.1.20"),  # one bad answer is enough
]


@pytest.mark.parametrize(("url", "says"), UNSAFE)
def test_check_url_refuses_non_public_addresses(url: str, says: str) -> None:
    with pytest.raises(UnsafeURL) as info:
        check_url(url, [], resolve=DNS)
    assert says in info.value.message
    assert "CLIPPER_URL_ALLOWLIST" in info.value.hint


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://127.1/",
                                 "http://localhost:8000/", "http://LOCALHOST./"])
def test_odd_spellings_are_refused_with_the_real_resolver(url: str) -> None:
    with pytest.raises(UnsafeURL) as info:
        check_url(url, [])
    assert "loopback" in info.value.message


def test_odd_spelling_message_explains_what_it_means() -> None:
    with pytest.raises(UnsafeURL) as info:
        check_url("http://0x7f.1/", [], resolve=DNS)
    assert "(0x7f.1 means 127.0.0.1)" in info.value.message


def test_message_says_what_and_how_to_fix() -> None:
    with pytest.raises(UnsafeURL) as info:
        check_url("http://10.1.2.3/x", [], resolve=DNS)
    assert str(info.value) == (
        "http://10.1.2.3/x points at a private network address (10.1.2.3); Clipper only fetches "
        "public addresses. If this host is yours, add it (host name, IP or CIDR) to "
        "CLIPPER_URL_ALLOWLIST.")


@pytest.mark.parametrize("url", [
    "https://news.example/live/1",
    "https://v6news.example/",
    "http://93.184.216.34/clip.mp4",
    "https://[2606:4700::1111]/",
    "http://[64:ff9b::808:808]/",  # NAT64 in front of a public address
    "http://[2002:808:808::1]/",  # 6to4 of a public address
    "HTTPS://NEWS.EXAMPLE:8443/x",
])
def test_check_url_accepts_public_addresses(url: str) -> None:
    check_url(url, [], resolve=DNS)


def test_literal_ips_do_not_touch_dns() -> None:
    dns = fake_dns({})
    with pytest.raises(UnsafeURL):
        check_url("http://0x7f.1/", [], resolve=dns)
    check_url("http://93.184.216.34/", [], resolve=dns)
    assert dns.calls == []


# ---------------------------------------------------------------- allowlist

@pytest.mark.parametrize(("url", "allowlist"), [
    ("http://127.0.0.1:8000/x", ["127.0.0.1"]),
    ("http://0x7f.1:8000/x", ["127.0.0.1"]),  # same address, other spelling
    ("http://[::ffff:127.0.0.1]/", ["127.0.0.1"]),
    ("http://10.1.2.3/x", ["10.0.0.0/8"]),
    ("https://intranet.example/v", ["10.0.0.0/8"]),
    ("https://newsroom.lan/feed.m3u8", ["newsroom.lan"]),  # by host name
    ("https://NEWSROOM.LAN./feed.m3u8", [" newsroom.lan "]),
    ("http://localhost:9000/", ["localhost"]),
    ("http://[fd00::5]/", ["fd00::/8"]),
    ("http://[::1]/", ["[::1]"]),
])
def test_allowlist_lets_listed_hosts_through(url: str, allowlist: list[str]) -> None:
    check_url(url, allowlist, resolve=DNS)


@pytest.mark.parametrize(("url", "allowlist"), [
    ("http://127.0.0.2/", ["127.0.0.1"]),
    ("http://[::1]/", ["127.0.0.1"]),
    ("http://localhost/", ["127.0.0.1"]),  # ::1 is not listed
    ("http://192.168.1.1/", ["10.0.0.0/8"]),
    ("https://mixed.example/v", ["93.184.216.34"]),  # the private answer is not listed
    ("https://intranet.example/v", ["newsroom.lan"]),
    ("http://10.0.0.5/", ["intranet.example"]),  # a name only allows that name
])
def test_allowlist_does_not_leak(url: str, allowlist: list[str]) -> None:
    with pytest.raises(InvalidInput):
        check_url(url, allowlist, resolve=DNS)


@pytest.mark.parametrize(("ip", "allowlist", "allowed"), [
    ("8.8.8.8", [], True),
    ("2606:4700::1111", [], True),
    ("10.9.8.7", [], False),
    ("10.9.8.7", ["10.0.0.0/8"], True),
    ("10.9.8.7", ["10.9.8.6"], False),
    ("127.0.0.1", ["127.0.0.1"], True),
    ("127.0.0.2", ["127.0.0.1"], False),
    ("::ffff:127.0.0.1", ["127.0.0.1"], True),
    ("::1", ["127.0.0.1"], False),
    ("224.0.0.1", [], False),
    ("100.100.100.100", [], False),
    ("192.168.1.1", ["localhost", "not a cidr/99"], False),
])
def test_is_allowed_address(ip: str, allowlist: list[str], allowed: bool) -> None:
    assert is_allowed_address(ip, allowlist) is allowed
    assert is_allowed_address(ipaddress.ip_address(ip), allowlist) is allowed


def test_address_problem_is_none_only_for_public() -> None:
    assert address_problem("1.1.1.1") is None
    assert address_problem("127.0.0.1") == "a loopback address"
    assert address_problem("169.254.1.1") == "a link-local address"


def test_vet_host_reports_allowlisted_and_addresses() -> None:
    public = vet_host("news.example", 443, ["127.0.0.1"], target="t", resolve=DNS)
    assert public.addresses == (ipaddress.ip_address("93.184.216.34"),)
    assert not public.allowlisted
    local = vet_host("rebind.example", 80, ["127.0.0.1"], target="t", resolve=DNS)
    assert local.allowlisted
    named = vet_host("newsroom.lan", 80, ["newsroom.lan"], target="t", resolve=DNS)
    assert named.allowlisted and str(named.addresses[0]) == "192.168.1.5"
