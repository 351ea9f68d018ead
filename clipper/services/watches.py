"""Watch-lists on the live transcripts: watches, the matcher the live transcriber runs, alerts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from clipper import rota
from clipper.context import Context
from clipper.errors import ClipperError, Conflict, InvalidInput, NotFound
from clipper.net.urls import check_url
from clipper.net.webhook import slack_escape, slack_link
from clipper.permissions import OPERATOR, Actor, require, requires
from clipper.pipeline.channel_media import find_channel
from clipper.pipeline.lifecycle import log_event
from clipper.pipeline.notifications import notify, release
from clipper.pipeline.sources import CHANNEL_NAME
from clipper.search.query import Query, Term, parse_query, tokenize
from clipper.search.snippet import find_spans
from clipper.services.flags import FlagResult, flag_channel
from clipper.storage.tables import (
    Alert,
    Channel,
    Clip,
    Event,
    LiveSegment,
    Shift,
    Signup,
    User,
    Watch,
)
from clipper.timecode import format_wallclock

log = logging.getLogger(__name__)

#: Words of the transcript just before the new segments that a match may start in, so a
#: phrase said across two segments is found when the second one arrives.
LOOKBACK_SECONDS = 15.0
#: Every term of one match lies within this many seconds (the live transcript has no
#: sentences to stand in for search's "same segment").
WINDOW_SECONDS = 15.0
#: Words either side of the matched ones: the alert's text, and where an excluded term
#: (`-x`) cancels the match.
CONTEXT_WORDS = 10
#: One alert per watch per channel per this many seconds of air time.
RATE_SECONDS = 60.0
#: The quick pass (`match_heard`) alerts on a match once this much audio after it was heard
#: (Whisper mishears a word cut by the end of what it heard), or this much for a query with
#: excluded words (their CONTEXT_WORDS after the match, ~4 s of speech, must be heard).
QUICK_AFTER = 1.0
QUICK_AFTER_EXCLUDED = 4.5
#: An auto-flag (and `Clip this`) covers the match with this much either side.
FLAG_PAD_SECONDS = 20.0
#: No live segment is longer than this: bounds the index scan for the look-back.
MAX_SEGMENT_SECONDS = 120.0
#: The Event action that records an auto-flag that could not be filed, with the alert's id.
FLAG_REFUSED = "watch.flag_refused"
MAX_ALERTS = 1000

_NAME_HINT = "A watch name is 1-40 letters, digits, '-' or '_', e.g. nhs-strike."


# ---- the matcher (pure) -----------------------------------------------------------------------

@dataclass(frozen=True)
class Word:
    """One transcript word on the wall clock; `new` when it came in the segments being matched."""

    start: float
    end: float
    text: str
    new: bool = False


@dataclass(frozen=True)
class Match:
    """A watch's query found in the word stream: the matched words' span (wall clock, first to
    last matched word) and the words around them."""

    start: float
    end: float
    text: str


def segment_words(words: Sequence[Any] | None, text: str, wall_start: float,
                  wall_end: float) -> list[tuple[float, float, str]]:
    """A live segment's [start, end, word] list, or, for captions without word timings, its
    text's words spread evenly over the segment (pure)."""
    out = []
    for item in words or ():
        try:
            out.append((float(item[0]), float(item[1]), str(item[2])))
        except (TypeError, ValueError, IndexError):  # a malformed entry: skip just that word
            continue
    if out:
        return out
    parts = (text or "").split()
    step = (wall_end - wall_start) / len(parts) if parts else 0.0
    return [(wall_start + i * step, wall_start + (i + 1) * step, w) for i, w in enumerate(parts)]


def _tokens(words: Sequence[Word]) -> list[tuple[str, int]]:
    """(token, index of its word): the search index's split, so "NHS's" is nhs + s."""
    return [(tok, i) for i, w in enumerate(words) for tok in tokenize(w.text)]


def _occurrences(tokens: Sequence[tuple[str, int]], term: Term) -> list[tuple[int, int]]:
    """(first, last) token positions of each occurrence of `term` (phrases: consecutive)."""
    n, found = len(term.tokens), []
    for i in range(len(tokens) - n + 1):
        ok = True
        for j, want in enumerate(term.tokens):
            have = tokens[i + j][0]
            if not (have.startswith(want) if term.prefix and j == n - 1 else have == want):
                ok = False
                break
        if ok:
            found.append((i, i + n - 1))
    return found


def _spans(groups: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    """Candidate matches as (first, last) token positions: for each left edge, the tightest
    choice of one occurrence per group that starts there or later."""
    lefts = sorted({a for occ in groups for a, _ in occ})
    spans = set()
    for left in lefts:
        chosen = []
        for occ in groups:
            after = [o for o in occ if o[0] >= left]
            if not after:
                break
            chosen.append(min(after, key=lambda o: o[1]))
        else:
            spans.add((min(a for a, _ in chosen), max(b for _, b in chosen)))
    return sorted(spans)


def _has(tokens: Sequence[tuple[str, int]], term: Term) -> bool:
    return bool(_occurrences(tokens, term))


def find_matches(words: Sequence[Word], query: Query, *,
                 window: float = WINDOW_SECONDS) -> list[Match]:
    """Where `query` matches the word stream, earliest first (pure).

    The search language's meaning on a stream: every group (its terms OR-ed) occurs within
    `window` seconds, phrases as consecutive words (across segments too), case and punctuation
    ignored as the search index does; a match is cancelled when an excluded term occurs among
    the matched words or the CONTEXT_WORDS either side. Only matches with at least one `new`
    word count: the others were found when their words were new.
    """
    ordered = sorted(words, key=lambda w: (w.start, w.end))
    tokens = _tokens(ordered)
    groups = [sorted({o for term in group for o in _occurrences(tokens, term)})
              for group in query.groups]
    if not all(groups):
        return []
    found = []
    for a, b in _spans(groups):
        first, last = tokens[a][1], tokens[b][1]
        if ordered[last].end - ordered[first].start > window:
            continue
        if not any(w.new for w in ordered[first : last + 1]):
            continue
        lo, hi = max(0, first - CONTEXT_WORDS), min(len(ordered), last + CONTEXT_WORDS + 1)
        around = [t for t in tokens if lo <= t[1] < hi]
        if any(_has(around, term) for term in query.excluded):
            continue
        text = " ".join(w.text.strip() for w in ordered[lo:hi] if w.text.strip())
        found.append(Match(ordered[first].start, ordered[last].end, text))
    return sorted(found, key=lambda m: (m.start, m.end))


def stream(new: Sequence[tuple[float, float, str]], older: Sequence[tuple[float, float, str]],
           since: float) -> list[Word]:
    """The words to match: the new ones, and the older ones from `since` on. A word stored twice
    (a segment delivered again as a new row) is kept once, as new: if the first delivery was
    never matched (a crash in between), this one must be; the Alert table stops a second
    alert if it was."""
    fresh = {(round(s, 2), w.strip()) for s, _e, w in new}
    words = [Word(s, e, w, True) for s, e, w in new]
    words += [Word(s, e, w, False) for s, e, w in older
              if s >= since and (round(s, 2), w.strip()) not in fresh]
    return sorted(words, key=lambda w: (w.start, w.end))


# ---- checks -----------------------------------------------------------------------------------

def check_watch_name(name: str) -> str:
    """The name, stripped; InvalidInput unless it is 1-40 letters, digits, '-' or '_' (pure)."""
    text = (name or "").strip()
    if not CHANNEL_NAME.match(text):
        raise InvalidInput(f"{name!r} is not a watch name.", _NAME_HINT)
    return text


def split_names(channels: Sequence[str] | str | None) -> list[str] | None:
    """Channel names from a list or "a,b" (None or empty: every channel), de-duplicated (pure)."""
    if channels is None:
        return None
    items = channels.split(",") if isinstance(channels, str) else list(channels)
    names = list(dict.fromkeys(str(c).strip() for c in items if str(c).strip()))
    return names or None


def _watch_dict(w: Watch) -> dict[str, Any]:
    # A hook URL carries its secret in the path (Slack): only its host is shown.
    return {"name": w.name, "query": w.query, "channels": w.channels,
            "auto_flag": bool(w.auto_flag),
            "notify": (urlsplit(w.notify_url).hostname or "?") if w.notify_url else None,
            "created_by": w.created_by}


def _applies(w: Watch, channel: str) -> bool:
    return w.channels is None or channel in w.channels


def _parsed(w: Watch) -> Query | None:
    try:
        return parse_query(w.query)
    except InvalidInput as exc:  # checked when added; a parser change must not stop the others
        log.warning("watch %s: its query no longer parses (%s); skipped", w.name, exc)
        return None


def _utc(t: datetime | None) -> datetime:
    return (t or datetime.now(UTC)).astimezone(UTC)


def _since(ctx: Context, since: str | float | datetime | None) -> float | None:
    if since is None or since == "":
        return None
    if isinstance(since, int | float):
        return float(since)
    return rota.parse_time(since, ctx.settings.timezone, field="since").timestamp()


# ---- watches ----------------------------------------------------------------------------------

@requires("manage_watches")
def add_watch(ctx: Context, actor: Actor, name: str, query: str, *,
              channels: Sequence[str] | str | None = None, auto_flag: bool = False,
              notify_url: str | None = None) -> dict[str, Any]:
    """Add a watch: `query` in the search language, on `channels` (None: all) — alerting the
    team's webhook or `notify_url`, and filing a flag on each match when `auto_flag`.

    Refused with nothing stored: a bad name, a query that does not parse (InvalidInput with the
    parser's message), an unknown channel, a notify URL that is not http(s) or not a public
    address (UnsafeURL), a name already taken (Conflict).
    """
    name = check_watch_name(name)
    query = (query or "").strip()
    parse_query(query)
    names = split_names(channels)
    for c in names or ():
        if not CHANNEL_NAME.match(c):
            raise InvalidInput(f"{c!r} is not a channel name.",
                               "Give channel names separated by commas, e.g. --channels a,b.")
    url = (notify_url or "").strip() or None
    if url is not None:
        # The outbox posts to it from the server: the same rule as any URL Clipper fetches.
        check_url(url, ctx.settings.url_allowlist)
    taken = Conflict(f"A watch named {name!r} already exists.",
                     "Pick another name, or remove the old watch first.")
    try:
        with ctx.db.session() as session:
            for c in names or ():
                if find_channel(session, c) is None:
                    raise InvalidInput(f"There is no channel named {c!r}.",
                                       "See the channels with `clipper channels list`.")
            same = select(Watch.id).where(func.lower(Watch.name) == name.lower())
            if session.scalars(same).first() is not None:
                raise taken
            row = Watch(name=name, query=query, channels=names, auto_flag=bool(auto_flag),
                        notify_url=url, created_by=actor.name)
            session.add(row)
            session.flush()
            log_event(session, actor.name, "watch.added", None,
                      {"name": name, "query": query, "channels": names,
                       "auto_flag": bool(auto_flag)})
            return _watch_dict(row)
    except IntegrityError:  # added by someone else between our check and the insert
        raise taken from None


@requires("manage_watches")
def list_watches(ctx: Context, actor: Actor) -> list[dict[str, Any]]:
    """Every watch by name: `{"name", "query", "channels", "auto_flag", "notify", "created_by"}`
    (`channels` None: all; `notify` the own hook's host, None: the team's webhook)."""
    with ctx.db.read() as session:
        return [_watch_dict(w) for w in session.scalars(select(Watch).order_by(Watch.name))]


@requires("manage_watches")
def remove_watch(ctx: Context, actor: Actor, name: str) -> dict[str, Any]:
    """Remove a watch (its alerts are kept); NotFound when there is none of that name."""
    name = (name or "").strip()
    with ctx.db.session() as session:
        row = session.scalars(select(Watch).where(Watch.name == name)).first()
        if row is None:
            raise NotFound(f"There is no watch named {name!r}.",
                           "See the watches with `clipper watch list`.")
        out = _watch_dict(row)
        session.delete(row)
        log_event(session, actor.name, "watch.removed", None, {"name": name})
    return out


# ---- matching ---------------------------------------------------------------------------------

@requires("manage_watches")
def match_segments(ctx: Context, actor: Actor, channel_id: int,
                   segment_ids: Sequence[int]) -> list[int]:
    """Match newly stored live segments of one channel against every watch on it; the ids of
    the alerts raised. The live transcriber calls it right after storing them.

    The new segments' words are matched with the LOOKBACK_SECONDS of words before them (see
    `find_matches`). A match at most RATE_SECONDS (air time) from another alert of the same
    watch on the same channel is dropped — checked against the Alert table, so a restart or a
    segment delivered again never alerts twice. Each alert is stored with its notification
    (the team's webhook, or the watch's own) in one transaction; then, for an auto-flag watch,
    a flag is filed as `watch:<name>` from the match - 20 s to + 20 s. A flag that cannot be
    filed is logged (an Event `watch.flag_refused` naming the alert), never raised.
    """
    ids = sorted({int(i) for i in segment_ids})
    if not ids:
        return []
    with ctx.db.read() as session:
        channel = session.get(Channel, int(channel_id))
        watches = [] if channel is None else [
            w for w in session.scalars(select(Watch).order_by(Watch.id))
            if _applies(w, channel.name)]
        if not watches:
            return []
        seg = LiveSegment
        new = session.execute(select(seg.wall_start, seg.wall_end, seg.text, seg.words)
                              .where(seg.channel_id == channel.id, seg.id.in_(ids))).all()
        if not new:
            return []
        lo, hi = min(r[0] for r in new), max(r[1] for r in new)
        since = lo - LOOKBACK_SECONDS
        older = session.execute(
            select(seg.wall_start, seg.wall_end, seg.text, seg.words)
            .where(seg.channel_id == channel.id, seg.id.not_in(ids),
                   seg.wall_start >= since - MAX_SEGMENT_SECONDS, seg.wall_start < hi,
                   seg.wall_end > since)).all()
        name = channel.name
        plan = [(w.id, w.name, w.auto_flag, w.notify_url, _parsed(w)) for w in watches]
    words = stream([x for r in new for x in segment_words(r.words, r.text, r[0], r[1])],
                   [x for r in older for x in segment_words(r.words, r.text, r[0], r[1])],
                   since)
    return _alert_on(ctx, name, plan, words)


@requires("manage_watches")
def match_heard(ctx: Context, actor: Actor, channel_id: int,
                words: Sequence[tuple[float, float, str]], *, new_from: float = float("-inf"),
                heard_to: float = float("inf")) -> list[int]:
    """Match words just heard on a channel but not stored (the live transcriber's quick pass
    over its newest seconds) against every watch on it; the ids of the alerts raised.

    `words` are those heard lately, the ones from `new_from` on new (a match needs one); the
    audio was heard up to `heard_to`. Whisper mishears a word the end of its audio cuts, so a
    match counts only once QUICK_AFTER seconds were heard after it — QUICK_AFTER_EXCLUDED for a
    query with excluded words, whose CONTEXT_WORDS after the match must be heard to cancel it;
    until then a later pass finds it. The same rules as `match_segments` otherwise: the stored
    transcript of those seconds, matched when it comes, finds the alert already made
    (RATE_SECONDS) and raises no second one."""
    if not words:
        return []
    with ctx.db.read() as session:
        channel = session.get(Channel, int(channel_id))
        plan = [] if channel is None else [
            (w.id, w.name, w.auto_flag, w.notify_url, _parsed(w))
            for w in session.scalars(select(Watch).order_by(Watch.id))
            if _applies(w, channel.name)]
        name = channel.name if channel is not None else ""
    if not plan:
        return []

    def heard_enough(m: Match, query: Query) -> bool:
        after = QUICK_AFTER_EXCLUDED if query.excluded else QUICK_AFTER
        return heard_to - m.end >= after

    return _alert_on(ctx, name, plan, [Word(a, b, w, (a + b) / 2 >= new_from)
                                       for a, b, w in words], ready=heard_enough)


@requires("manage_watches")
def watched_channel_ids(ctx: Context, actor: Actor) -> set[int]:
    """The channels at least one watch applies to (the quick pass listens only to those)."""
    with ctx.db.read() as session:
        watches = session.scalars(select(Watch)).all()
        if not watches:
            return set()
        return {c.id for c in session.scalars(select(Channel))
                if any(_applies(w, c.name) for w in watches)}


def _alert_on(ctx: Context, name: str, plan: Sequence[tuple[int, str, bool, str | None,
                                                             Query | None]],
              words: Sequence[Word], *,
              ready: Callable[[Match, Query], bool] = lambda _m, _q: True) -> list[int]:
    """Alerts (and auto-flags) on channel `name` for each watch in `plan` matching `words`
    (those matches `ready` accepts)."""
    raised = []
    for watch_id, watch, auto_flag, url, query in plan:
        if query is None:
            continue
        alerted: list[float] = []  # spares the database a check it would refuse anyway
        for m in find_matches(words, query):
            if any(abs(m.start - t) < RATE_SECONDS for t in alerted) or not ready(m, query):
                continue
            made = _raise_alert(ctx, watch_id, watch, name, m, url=url, auto_flag=auto_flag)
            if made is None:
                continue
            alert_id, message_id = made
            alerted.append(m.start)
            raised.append(alert_id)
            if auto_flag:
                flagged = _auto_flag(ctx, alert_id, watch, name, m)
                if message_id is not None:
                    release(ctx, message_id, lambda body, f=flagged: _note_flag(body, f))
    return raised


#: Seconds an auto-flagging alert's webhook waits for its flag's ids (filed within tens of
#: milliseconds; the wait only matters to a matcher that dies in between).
FLAG_HOLD_SECONDS = 5.0


def _raise_alert(ctx: Context, watch_id: int, watch: str, channel: str, m: Match, *,
                 url: str | None, auto_flag: bool) -> tuple[int, int | None] | None:
    """Store the alert and its notification together, unless the watch is gone or alerted on
    this channel within RATE_SECONDS of air time: (the alert's id, its message's id), or None.
    An auto-flagging alert's message is held until its flag is filed (`release`)."""
    with ctx.db.session() as session:
        # The watch row, locked: two matchers of one channel (a restart overlapping the old
        # process) take turns here, so the rate-limit check below sees the other's alert.
        if session.scalars(select(Watch.id).where(Watch.id == watch_id)
                           .with_for_update()).first() is None:
            return None
        clash = session.scalars(select(Alert.id).where(
            Alert.watch == watch, Alert.channel == channel,
            Alert.wall_start > m.start - RATE_SECONDS,
            Alert.wall_start < m.start + RATE_SECONDS).limit(1)).first()
        if clash is not None:
            return None
        alert = Alert(watch=watch, channel=channel, wall_start=m.start, wall_end=m.end,
                      text=m.text)
        session.add(alert)
        session.flush()
        message = notify(ctx, alert_message(alert.id, watch, channel, m,
                                            link=_alerts_link(ctx), auto_flag=auto_flag),
                         session=session, url=url, hold=FLAG_HOLD_SECONDS if auto_flag else 0.0)
        return alert.id, message


def _note_flag(body: dict[str, Any], flagged: FlagResult | None) -> None:
    """Put the auto-flag's ids into a held alert message (pure on `body`)."""
    if flagged is not None:
        body["alert"] = {**body.get("alert", {}), "flag_id": flagged.flag_id,
                         "clip_id": flagged.clip_id}


def _alerts_link(ctx: Context) -> str:
    base = ctx.settings.base_url.rstrip("/")
    return f"{base}/alerts" if base else ""


def alert_message(alert_id: int, watch: str, channel: str, m: Match, *, link: str = "",
                  auto_flag: bool = False) -> dict[str, Any]:
    """Webhook body for "a watch matched on a channel" (pure)."""
    at = datetime.fromtimestamp(m.start, UTC).strftime("%H:%M:%S UTC")
    text = (f"Watch {slack_escape(watch)} matched on {slack_escape(channel)} at {at}: "
            f"“{slack_escape(m.text)}”")
    if auto_flag:
        text += " — filing a flag"
    if link:
        text += f" ({slack_link(link, 'alerts')})"
    wall_start, wall_end = format_wallclock(m.start), format_wallclock(m.end)
    alert = {"id": alert_id, "watch": watch, "channel": channel, "wall_start": wall_start,
             "wall_end": wall_end, "text": m.text, "flag_id": None, "clip_id": None}
    return {"text": text, "alert": alert, "event": "watch.alert", "alert_id": alert_id,
            "watch": watch, "channel": channel, "wall_start": wall_start, "wall_end": wall_end,
            "context": m.text, "auto_flag": auto_flag, "link": link}


def _auto_flag(ctx: Context, alert_id: int, watch: str, channel: str,
               m: Match) -> FlagResult | None:
    """File the watch's flag and note it on the alert (its result, or None when refused: the
    refusal is logged, never raised)."""
    flagger = Actor(f"watch:{watch}", OPERATOR)
    try:
        result = flag_channel(ctx, flagger, channel, start=m.start - FLAG_PAD_SECONDS,
                              end=m.end + FLAG_PAD_SECONDS, note=f"Watch {watch}: {m.text}")
    except ClipperError as exc:
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - a flag's failure must not stop the live matcher
        log.exception("watch %s: filing the flag of alert %d failed", watch, alert_id)
        problem = f"{type(exc).__name__}: {exc}"
    else:
        try:
            with ctx.db.session() as session:
                session.execute(update(Alert).where(Alert.id == alert_id)
                                .values(flag_id=result.flag_id, clip_id=result.clip_id))
        except SQLAlchemyError as exc:
            log.warning("alert %d: flag %d filed but not noted on it: %s", alert_id,
                        result.flag_id, exc)
        return result
    log.warning("watch %s: alert %d could not be flagged: %s", watch, alert_id, problem)
    try:
        with ctx.db.session() as session:
            log_event(session, flagger.name, FLAG_REFUSED, None,
                      {"alert_id": alert_id, "watch": watch, "channel": channel,
                       "error": problem[:500]})
    except SQLAlchemyError as exc:
        log.warning("alert %d: the refusal was not stored: %s", alert_id, exc)
    return None


# ---- alerts -----------------------------------------------------------------------------------

def _on_shift(session: Session, name: str, at: datetime) -> list[str]:
    """The channels `name` is on a (not cancelled) shift for at `at`, signed up or checked in."""
    return sorted(set(session.scalars(
        select(Channel.name).join(Shift, Shift.channel_id == Channel.id)
        .join(Signup, Signup.shift_id == Shift.id).join(User, User.id == Signup.user_id)
        .where(User.name == name, Signup.state.in_(rota.ACTIVE), Shift.cancelled.is_(False),
               Shift.start <= at, Shift.end > at))))


def _scope(session: Session, actor: Actor, at: datetime) -> list[str] | None:
    """The channels whose alerts `actor` sees: None for all (manage_watches), else those of the
    shifts they are on now."""
    return None if actor.can("manage_watches") else _on_shift(session, actor.name, at)


@requires("view_alerts")
def alert_channels(ctx: Context, actor: Actor, *, at: datetime | None = None) -> list[str] | None:
    """The channels whose alerts `actor` sees: None means every channel (those who manage
    watches); a volunteer sees the channels of the shifts they are on now."""
    with ctx.db.read() as session:
        return _scope(session, actor, _utc(at))


def _marks(text: str, query: str | None) -> list[list[int]]:
    if query is None:
        return []
    try:
        return [[a, b] for a, b in find_spans(text, parse_query(query))]
    except InvalidInput:
        return []


@requires("view_alerts")
def list_alerts(ctx: Context, actor: Actor, *, since: str | float | datetime | None = None,
                limit: int = 100, at: datetime | None = None) -> list[dict[str, Any]]:
    """Alerts newest first (by air time), those from `since` on (ISO 8601, without an offset in
    CLIPPER_TIMEZONE; or Unix seconds). A volunteer sees only the alerts of the channels they
    are on shift for at `at` (default now).

    Each: `{"id", "watch", "channel", "wall_start", "wall_end", "text", "flag_id", "clip_id"}`
    (times ISO 8601 UTC with milliseconds; flag and clip null without an auto-flag) plus, for
    pages, `start`/`end` (Unix seconds), `clip_status`, `clip_progress`, `flag_problem` (why
    the auto-flag could not be filed) and `marks` ([from, to] character ranges of `text` the
    watch's query matches, while the watch exists).
    """
    lo = _since(ctx, since)
    try:
        limit = max(1, min(MAX_ALERTS, int(limit)))
    except (TypeError, ValueError):
        raise InvalidInput(f"limit {limit!r} is not a whole number.") from None
    with ctx.db.read() as session:
        q = select(Alert).order_by(Alert.wall_start.desc(), Alert.id.desc()).limit(limit)
        if lo is not None:
            q = q.where(Alert.wall_start >= lo)
        scope = _scope(session, actor, _utc(at))
        if scope is not None:
            if not scope:
                return []
            q = q.where(Alert.channel.in_(scope))
        alerts = list(session.scalars(q))
        if not alerts:
            return []
        clip_ids = {a.clip_id for a in alerts if a.clip_id is not None}
        clips = {cid: (status, progress) for cid, status, progress in session.execute(
            select(Clip.id, Clip.status, Clip.progress).where(Clip.id.in_(clip_ids)))
            } if clip_ids else {}
        queries = dict(session.execute(select(Watch.name, Watch.query).where(
            Watch.name.in_({a.watch for a in alerts}))).all())
        problems = _flag_problems(session, alerts)
        # Built inside the transaction: a read session's rollback expires its rows.
        out = []
        for a in alerts:
            status, progress = clips.get(a.clip_id, (None, None))
            out.append({"id": a.id, "watch": a.watch, "channel": a.channel,
                        "wall_start": format_wallclock(a.wall_start),
                        "wall_end": format_wallclock(a.wall_end), "text": a.text,
                        "flag_id": a.flag_id, "clip_id": a.clip_id,
                        "start": a.wall_start, "end": a.wall_end, "clip_status": status,
                        "clip_progress": progress, "flag_problem": problems.get(a.id),
                        "marks": _marks(a.text, queries.get(a.watch))})
    return out


def _flag_problems(session: Session, alerts: list[Alert]) -> dict[int, str]:
    """alert id -> why its auto-flag was refused (Events logged since the oldest alert)."""
    waiting = {a.id for a in alerts if a.flag_id is None}
    if not waiting:
        return {}
    oldest = min(a.created_at for a in alerts if a.id in waiting)
    rows = session.scalars(select(Event.details).where(Event.action == FLAG_REFUSED,
                                                       Event.at >= oldest))
    found = {}
    for details in rows:
        alert_id = (details or {}).get("alert_id")
        if alert_id in waiting:
            found[alert_id] = str(details.get("error") or "refused")
    return found


@requires("flag")
def clip_alert(ctx: Context, actor: Actor, alert_id: int, *, note: str = "") -> FlagResult:
    """`Clip this`: file `actor`'s flag on the alert's channel from its match - 20 s to + 20 s
    (merging with the auto-flag and others' flags as usual). NotFound for an alert the actor
    cannot see."""
    require(actor, "view_alerts")
    with ctx.db.read() as session:
        alert = session.get(Alert, int(alert_id))
        scope = _scope(session, actor, _utc(None))
        if alert is None or (scope is not None and alert.channel not in scope):
            raise NotFound(f"There is no alert {alert_id} for you.",
                           "Alerts show for the channel of your shift while it runs.")
        channel, start, end = alert.channel, alert.wall_start, alert.wall_end
        text = note.strip() or f"Watch {alert.watch}: {alert.text}"
    return flag_channel(ctx, actor, channel, start=start - FLAG_PAD_SECONDS,
                        end=end + FLAG_PAD_SECONDS, note=text)

