"""Source URLs: the normalised key that tells two flags apart, and the fetch-safety (SSRF) check."""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from clipper.errors import InvalidInput, UnsafeURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list]

ALLOWED_SCHEMES = ("http", "https")
"""The only schemes Clipper fetches; everything else (file, ftp, data, …) is refused."""

DEFAULT_PORTS = {"http": 80, "https": 443}
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "si", "feature", "igshid", "mc_cid", "mc_eid"})
"""Query parameters that only track the sharer; dropped from the key (plus every `utm_*`)."""

ALLOWLIST_HINT = (
    "If this host is yours, add it (host name, IP or CIDR) to CLIPPER_URL_ALLOWLIST."
)
_MAX_URL = 4096
_BAD_CHARS = re.compile(r"[\s\\\x00-\x1f\x7f]")
# inet_aton's legacy forms (127.1, 0x7f.1, 2130706433, octal); the OS resolves them the same way.
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)
_YT_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
_YT_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com",
                       "youtube-nocookie.com", "www.youtube-nocookie.com"})
_YT_PATH_PREFIXES = ("/shorts/", "/live/", "/embed/", "/v/")
# Ranges that ipaddress may call "global" but that must never be fetched.
_EXTRA_BLOCKED: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (ipaddress.ip_network("192.0.0.0/24"), "an IETF protocol address"),
    (ipaddress.ip_network("198.18.0.0/15"), "a benchmarking address"),
    (ipaddress.ip_network("fec0::/10"), "a site-local IPv6 address"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "a local-use NAT64 address"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPAT = ipaddress.ip_network("::/96")


# ---------------------------------------------------------------- normalisation

def normalize_url(url: str) -> str:
    """The key that tells two flags point at the same source (YouTube forms become one watch URL).

    Lowercases scheme and host, drops default ports, fragments and tracking parameters,
    sorts the query and strips the lone "/" of an empty path. Does not validate: call
    `check_url` for that.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    video_id = _youtube_id(host, parts.path, parts.query)
    if video_id:
        return f"https://www.youtube.com/watch?v={video_id}"
    netloc = _netloc(parts, scheme, host)
    path = "" if parts.path == "/" else parts.path
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in TRACKING_PARAMS and not k.lower().startswith("utm_")]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query), quote_via=quote), ""))


def _netloc(parts, scheme: str, host: str) -> str:
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return netloc


def _youtube_id(host: str, path: str, query: str) -> str | None:
    """The video id of any YouTube link form, or None for other URLs (channels, playlists…)."""
    if host == "youtu.be":
        candidate = path.strip("/").split("/")[0]
    elif host in _YT_HOSTS and path.rstrip("/") == "/watch":
        candidate = dict(parse_qsl(query)).get("v", "")
    elif host in _YT_HOSTS and path.startswith(_YT_PATH_PREFIXES):
        candidate = path.split("/")[2]
    else:
        return None
    return candidate if _YT_ID.match(candidate) else None


# ---------------------------------------------------------------- address rules

def address_problem(ip: str | IPAddress) -> str | None:
    """Why `ip` must not be fetched ("a private network address", …), or None when it is public."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(addr)
        problem = address_problem(embedded) if embedded is not None else None
        if problem:
            return f"{problem} in IPv6 form"
        if embedded is not None and (addr.ipv4_mapped or addr in _NAT64):
            return None  # the packets go to the (public) IPv4 address: judge that alone
    for blocked, why in _EXTRA_BLOCKED:
        if addr.version == blocked.version and addr in blocked:
            return why
    checks = (
        (addr.is_unspecified, "an unspecified address"),
        (addr.is_loopback, "a loopback address"),
        (addr.is_link_local, "a link-local address"),
        (addr.is_multicast, "a multicast address"),
        (addr.is_private, "a private network address"),
        (addr.is_reserved, "a reserved address"),
        (not addr.is_global, "a non-public address"),
    )
    return next((why for bad, why in checks if bad), None)


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one tunnels to (mapped, 6to4, Teredo, NAT64, compatible)."""
    if addr.ipv4_mapped:
        return addr.ipv4_mapped
    if addr.sixtofour:
        return addr.sixtofour
    if addr.teredo:
        return addr.teredo[1]
    if addr in _NAT64 or (addr in _IPV4_COMPAT and int(addr) > 1):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


@functools.lru_cache(maxsize=64)
def _parse_allowlist(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    hosts: set[str] = set()
    nets: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower().strip("[]").rstrip(".")
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.add(entry)
    return frozenset(hosts), tuple(nets)


def _in_allowlist(addr: IPAddress, allowlist: Sequence[str]) -> bool:
    _, nets = _parse_allowlist(tuple(allowlist))
    candidates = [addr]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        candidates.append(addr.ipv4_mapped)
    return any(c.version == n.version and c in n for c in candidates for n in nets)


def host_in_allowlist(host: str, allowlist: Sequence[str]) -> bool:
    """True when the host name itself (case-insensitive, trailing dot ignored) is allowlisted."""
    hosts, _ = _parse_allowlist(tuple(allowlist))
    return host.lower().strip("[]").rstrip(".") in hosts


def is_allowed_address(ip: str | IPAddress, allowlist: Sequence[str]) -> bool:
    """Pure rule: may Clipper connect to `ip`? Public addresses yes; others only if allowlisted."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    return address_problem(addr) is None or _in_allowlist(addr, allowlist)


# ---------------------------------------------------------------- the check

@dataclass(frozen=True)
class VettedHost:
    """A host that passed the rules: the addresses to connect to (in order) and whether it is
    allowlisted (by name, or every address), which lifts the port policy in the proxy."""

    host: str
    addresses: tuple[IPAddress, ...]
    allowlisted: bool


def literal_ip(host: str) -> IPAddress | None:
    """The address a host written as an IP means, including legacy forms like 127.1 or 0x7f.1."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def resolve_host(host: str, port: int | None, *, target: str,
                 resolve: Resolver = socket.getaddrinfo) -> tuple[IPAddress, ...]:
    """Every address `host` resolves to, IP literals (all forms) without asking DNS.

    Raises InvalidInput naming `target` when the name does not resolve.
    """
    literal = literal_ip(host)
    if literal is not None:
        return (literal,)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(
            f"{target}: the host {host!r} could not be found ({exc}).",
            "Check the link for typos, or try again if the network is down.",
        ) from exc
    found = dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    if not found:
        raise InvalidInput(f"{target}: the host {host!r} has no addresses.", "Check the link.")
    return tuple(found)


def vet_host(host: str, port: int | None, allowlist: Sequence[str], *, target: str,
             resolve: Resolver = socket.getaddrinfo) -> VettedHost:
    """Resolve `host` once and apply the address rules to every address it has.

    Raises UnsafeURL (non-public address, not allowlisted) or InvalidInput (unresolvable).
    """
    addresses = resolve_host(host, port, target=target, resolve=resolve)
    by_name = host_in_allowlist(host, allowlist)
    if not by_name:
        for addr in addresses:
            problem = address_problem(addr)
            if problem and not _in_allowlist(addr, allowlist):
                raise UnsafeURL(
                    f"{target} points at {problem} ({_describe(host, addr)}); "
                    "Clipper only fetches public addresses.",
                    ALLOWLIST_HINT,
                )
    allowlisted = by_name or all(_in_allowlist(a, allowlist) for a in addresses)
    return VettedHost(host=host, addresses=addresses, allowlisted=allowlisted)


def _describe(host: str, addr: IPAddress) -> str:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host.strip("[]")
    except ValueError:
        pass
    if literal_ip(host) is not None:
        return f"{host} means {addr}"
    return f"{host} resolves to {addr}"


def parse_fetch_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL Clipper may try to fetch; InvalidInput when malformed."""
    shown = url if len(url) <= 200 else url[:200] + "…"
    if not url or len(url) > _MAX_URL or _BAD_CHARS.search(url):
        raise InvalidInput(f"{shown!r} is not a valid link (empty, too long, or it contains "
                           "spaces, backslashes or control characters).",
                           "Paste the full link exactly as the browser shows it.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        what = f"the scheme {scheme!r}" if scheme and "//" in url else "no http(s):// scheme"
        raise InvalidInput(f"{shown} has {what}; Clipper only fetches "
                           f"{' and '.join(s + '://' for s in ALLOWED_SCHEMES)} links.",
                           "Paste the full link, starting with https://.")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise InvalidInput(f"{shown} has an invalid port ({exc}).", "Check the link.") from exc
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidInput(f"{shown} has no host name.", "Paste the full link, e.g. https://example.org/video.")
    return scheme, host, port


def check_url(url: str, allowlist: Sequence[str], *,
              resolve: Resolver = socket.getaddrinfo) -> None:
    """Refuse a URL Clipper must not fetch, before anything is stored.

    InvalidInput: malformed, not http(s), or the host does not resolve.
    UnsafeURL: the host, or any address it resolves to, is not public (private, loopback,
    link-local, multicast, reserved, shared, IPv6 forms of those…) and is not in `allowlist`
    (host names, IPs or CIDRs). Odd IP spellings (2130706433, 0x7f.1, 127.1) count as the
    address the OS would read them as.
    """
    url = url.strip()
    _, host, port = parse_fetch_url(url)
    vet_host(host, port, allowlist, target=url, resolve=resolve)
