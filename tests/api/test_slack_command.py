"""The /clip command's words and Slack's request signatures, pure: examples, friendly refusals,
and properties (what is written reads back the same; nothing but CommandError ever escapes)."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from clipper.api.slack_command import (
    MAX_AGE_SECONDS,
    ChannelClip,
    Command,
    CommandError,
    Help,
    LinkSlack,
    RequestRefused,
    UrlClip,
    command_text,
    parse_command,
    slack_signature,
    verify_request,
)
from clipper.net.webhook import slack_escape


@pytest.mark.parametrize(("text", "command"), [
    ("bbc-news last 45 PM on nurses", ChannelClip("bbc-news", last=45.0, note="PM on nurses")),
    ("bbc-news 19:42:10-19:43:05 PM on nurses",
     ChannelClip("bbc-news", start="19:42:10", end="19:43:05", note="PM on nurses")),
    ("https://example.org/news.mp4 1:07-1:41 waiting lists",
     UrlClip("https://example.org/news.mp4", 67.0, 101.0, "waiting lists")),
    # Slack's escaping of & < > (always), and links sent as <url|label> (an app setting).
    ("<https://example.org/v?a=1&amp;b=2|example.org> 67.5-01:01:15 M&amp;S &lt;3",
     UrlClip("https://example.org/v?a=1&b=2", 67.5, 3675.0, "M&S <3")),
    ("https://example.org/v.mp4 1:07 - 1:41", UrlClip("https://example.org/v.mp4", 67.0, 101.0)),
    ("  bbc-news   19:42:10 to 19:43:05   two  spaces ",
     ChannelClip("bbc-news", start="19:42:10", end="19:43:05", note="two  spaces")),
    ("bbc-news 19:42:10\u201319:43:05", ChannelClip("bbc-news", start="19:42:10", end="19:43:05")),
    ("#bbc-news last 2m", ChannelClip("bbc-news", last=120.0)),
    ("<#C024BE91L|bbc-news> last 2 min why", ChannelClip("bbc-news", last=120.0, note="why")),
    ("bbc-news last 1:30", ChannelClip("bbc-news", last=90.0)),
    ("bbc-news last 45 seconds", ChannelClip("bbc-news", last=45.0)),
    ("link k7qf-2mxr", LinkSlack("K7QF-2MXR")),
    ("help", Help()),
    ("", Help()),
    ("   ", Help()),
    # A channel may be called "link" or "help": a word only when it stands alone (or with a code).
    ("link last 30", ChannelClip("link", last=30.0)),
    ("help last 30", ChannelClip("help", last=30.0)),
])
def test_the_commands_people_type(text: str, command: Command) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(("text", "words"), [
    ("bbc-news", "Say which moment of bbc-news"),
    ("bbc-news last", "`last` needs a number of seconds."),
    ("bbc-news last soon", "not `soon`"),
    ("bbc-news last 0", "more than 0 seconds"),
    ("bbc-news last 99:99", "below 60"),
    ("bbc-news 19:42-19:43", "`19:42` has no seconds"),
    ("bbc-news 1:07:00-soon", "`soon` is not a time of day"),
    ("https://example.org/v.mp4", "Say which stretch of the video"),
    ("https://example.org/v.mp4 1:41-1:07", "must come after the start"),
    ("https://example.org/v.mp4 1:07-later", "'later' is not a time"),
    ("https://example.org/v.mp4 1:07-" + "9" * 5000, "too long to be times"),
    ("bbc-news last " + "9" * 5000, "`last` needs a number of seconds"),
    ("what? 1:07-1:41", "I don't know what `what?` is"),
    ("link", "/clip link CODE"),
    ("link a!b", "/clip link CODE"),
])
def test_refusals_say_what_to_type(text: str, words: str) -> None:
    with pytest.raises(CommandError) as refused:
        parse_command(text)
    assert words in str(refused.value)
    assert refused.value.hint  # always how to put it right


# ---- properties ---------------------------------------------------------------------------------

channel_names = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True).filter(
    lambda name: name.lower() not in ("help", "link"))
#: Notes: any printable text, inner whitespace kept; not opening with a word `last N` would
#: read as a unit (`s`, `min`…) — the writer always attaches its unit, so those are fine too.
notes = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
                max_size=60).map(str.strip)
millis = st.integers(min_value=1, max_value=10 * 3600 * 1000).map(lambda n: n / 1000)
clock = st.builds(lambda h, m, s, f: f"{h:02d}:{m:02d}:{s:02d}" + (f".{f}" if f else ""),
                  st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
                  st.sampled_from(["", "5", "250"]))
urls = st.builds(lambda host, path, query: f"https://{host}.example/{path}" + query,
                 st.text(string.ascii_lowercase, min_size=1, max_size=12),
                 st.text(string.ascii_letters + string.digits + "-._~/%", max_size=30),
                 st.sampled_from(["", "?a=1&b=<2>", "?q=x|y"]))


@st.composite
def url_clips(draw: st.DrawFn) -> UrlClip:
    start = draw(millis)
    end = draw(millis.filter(lambda e: e > start))
    return UrlClip(draw(urls), start, end, draw(notes))


commands = st.one_of(
    st.builds(lambda c, n, note: ChannelClip(c, last=n, note=note), channel_names, millis, notes),
    st.builds(lambda c, a, b, note: ChannelClip(c, start=a, end=b, note=note),
              channel_names, clock, clock, notes),
    url_clips(),
    st.builds(LinkSlack, st.from_regex(r"[A-Z0-9]{4}-[A-Z0-9]{4}", fullmatch=True)),
    st.just(Help()),
)


def same(a: Command, b: Command) -> bool:
    """Equal, times within a microsecond (a timecode is read back by adding its parts)."""
    if isinstance(a, UrlClip) and isinstance(b, UrlClip):
        return (a.url, a.note) == (b.url, b.note) and abs(a.start - b.start) < 1e-6 \
            and abs(a.end - b.end) < 1e-6
    if isinstance(a, ChannelClip) and isinstance(b, ChannelClip) and a.last is not None:
        return b.last is not None and abs(a.last - b.last) < 1e-6 and a == ChannelClip(
            b.channel, last=a.last, start=b.start, end=b.end, note=b.note)
    return a == b


@given(commands)
@example(ChannelClip("bbc", last=45.0, note="s and min"))
@example(ChannelClip("bbc", start="19:42:10", end="19:43:05", note="to - be &amp; seen"))
def test_what_is_written_reads_back_as_slack_sends_it(command: Command) -> None:
    typed = command_text(command)
    assert same(parse_command(slack_escape(typed)), command), typed
    if isinstance(command, UrlClip) and "|" not in command.url:
        # With "escape links" on, Slack wraps the URL (a `|` in it would arrive as %7C).
        first, rest = slack_escape(typed).split(" ", 1)
        assert same(parse_command(f"<{first}|label> {rest}"), command)


@given(st.text(max_size=200))
@example("https://x 1:07-" + "9" * 5000)
@example("bbc last 1" + "0" * 400)
@example("bbc 99:99:99-00:00:00")
def test_any_text_is_a_command_or_a_command_error(text: str) -> None:
    try:
        parse_command(text)
    except CommandError as exc:
        assert exc.message


@given(st.lists(st.sampled_from(["bbc-news", "last", "45", "1:07", "-", "to", "19:42:10",
                                 "19:42:10-19:43:05", "https://x.example/v", "<", "&amp;", "link",
                                 "help", "2m", "min", "1:07-1:41", "#", "<#C1|x>"]),
                max_size=6).map(" ".join))
def test_near_misses_are_a_command_or_a_command_error(text: str) -> None:
    try:
        parse_command(text)
    except CommandError as exc:
        assert exc.message


# ---- signatures ---------------------------------------------------------------------------------

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def test_slacks_own_published_example() -> None:
    """The worked example of Slack's "Verifying requests from Slack" page."""
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="
            b"398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_signature(SECRET, "1531420618", body) == signature
    verify_request(SECRET, "1531420618", body, signature, now=1531420618 + 10)


@pytest.mark.parametrize(("moved", "accepted"), [
    (0, True), (MAX_AGE_SECONDS, True), (-MAX_AGE_SECONDS, True),
    (MAX_AGE_SECONDS + 1, False), (-MAX_AGE_SECONDS - 1, False), (86400, False)])
def test_the_clock_window(moved: int, accepted: bool) -> None:
    ts, body = "1700000000", b"text=hi"
    signature = slack_signature("s3cret", ts, body)
    if accepted:
        verify_request("s3cret", ts, body, signature, now=1700000000 + moved)
    else:
        with pytest.raises(RequestRefused, match="too old"):
            verify_request("s3cret", ts, body, signature, now=1700000000 + moved)


@pytest.mark.parametrize(("secret", "ts", "body", "signature", "why"), [
    ("", "1700000000", b"a=1", "v0=00", "no signing secret"),
    ("s", None, b"a=1", "v0=00", "not signed"),
    ("s", "1700000000", b"a=1", None, "not signed"),
    ("s", "1700000000", b"a=1", "", "not signed"),
    ("s", "1_700_000_000", b"a=1", "v0=00", "not a time"),
    ("s", " 1700000000", b"a=1", "v0=00", "not a time"),
    ("s", "1700000000", b"a=1", "v0=" + "0" * 64, "wrong"),
    ("s", "1700000000", b"a=1", "v0=\u00e9\u00e9", "wrong"),  # non-ASCII: refused, not a crash
    ("s", "1700000000", b"a=2", slack_signature("s", "1700000000", b"a=1"), "wrong"),  # body
    ("s", "1700000000", b"a=1", slack_signature("t", "1700000000", b"a=1"), "wrong"),  # secret
    ("s", "1700000001", b"a=1", slack_signature("s", "1700000000", b"a=1"), "wrong"),  # time
    ("s", "1700000000", b"a=1", slack_signature("s", "1700000000", b"a=1").upper(), "wrong"),
])
def test_refused_requests(secret: str, ts: str | None, body: bytes, signature: str | None,
                          why: str) -> None:
    with pytest.raises(RequestRefused, match=why):
        verify_request(secret, ts, body, signature, now=1700000000)


@given(st.binary(max_size=300), st.text(max_size=80))
def test_only_the_right_signature_passes(body: bytes, forged: str) -> None:
    right = slack_signature("s3cret", "1700000000", body)
    verify_request("s3cret", "1700000000", body, right, now=1700000000)
    if forged != right:
        with pytest.raises(RequestRefused):
            verify_request("s3cret", "1700000000", body, forged, now=1700000000)
