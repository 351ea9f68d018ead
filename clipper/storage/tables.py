"""SQLAlchemy tables: the database is the source of truth for flags, clips, stages,
transcripts and events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    insert,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so store naive UTC there)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UTCDateTime()}


class Source(Base):
    """What flags point at: a URL (normalised) or a local/uploaded file (content hash)."""

    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # url | file | channel
    key: Mapped[str] = mapped_column(String(512), unique=True)
    location: Mapped[str] = mapped_column(Text)  # the URL as given, the file path, the channel name
    title: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Clip(Base):
    """The unit of work: a source interval (the union of its flags) moving through the pipeline."""

    __tablename__ = "clips"
    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(24), index=True, default="queued")
    version: Mapped[int] = mapped_column(Integer, default=1)
    urgency: Mapped[str] = mapped_column(String(8), default="normal")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    section_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    section_offset: Mapped[float | None] = mapped_column(Float, nullable=True)
    section_start: Mapped[float | None] = mapped_column(Float, nullable=True)
    section_end: Mapped[float | None] = mapped_column(Float, nullable=True)
    media_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    thumbnail_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    srt_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    vtt_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    transcript_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    cut_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    caption_text: Mapped[str] = mapped_column(Text, default="")
    trim_in: Mapped[float | None] = mapped_column(Float, nullable=True)
    trim_out: Mapped[float | None] = mapped_column(Float, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    render_options: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    export_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Channel clips: seconds inside [start, end] the recording lacks, as [[from, to], ...] (Unix).
    gaps: Mapped[list[Any] | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    source: Mapped[Source] = relationship(lazy="joined", innerjoin=True)
    flags: Mapped[list[Flag]] = relationship(back_populates="clip", order_by="Flag.id")


class Flag(Base):
    """One volunteer's report. Never deleted; points at the clip it created or joined."""

    __tablename__ = "flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    urgency: Mapped[str] = mapped_column(String(8), default="normal")
    by: Mapped[str] = mapped_column(String(128), index=True)
    merged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    clip: Mapped[Clip] = relationship(back_populates="flags")


class ClipTag(Base):
    """Every tag any flag of a clip carries, lower-cased: lets search filter by tag with an index.
    Kept by the ORM (see `_index_flag_tags`); derived from flags, so it can always be rebuilt."""

    __tablename__ = "clip_tags"
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)


@event.listens_for(Flag, "after_insert")
def _index_flag_tags(_mapper: Any, connection: Any, flag: Flag) -> None:
    tags = {str(t).strip().lower()[:64] for t in flag.tags or [] if str(t).strip()}
    if not tags:
        return
    # Wait for whoever holds the clip (the asr stage replacing its segments): on PostgreSQL the
    # new tags are copied onto the segments that exist when they land, not onto ones in flight.
    # The flag's foreign key already waits for a clip locked FOR UPDATE; this does not depend
    # on how the other side locked it.
    connection.execute(select(Clip.id).where(Clip.id == flag.clip_id).with_for_update())
    have = set(connection.execute(
        select(ClipTag.tag).where(ClipTag.clip_id == flag.clip_id)).scalars())
    if tags - have:
        connection.execute(insert(ClipTag),
                           [{"clip_id": flag.clip_id, "tag": t} for t in sorted(tags - have)])


class StageRun(Base):
    """One run of one pipeline stage for one clip version: timing and error."""

    __tablename__ = "stage_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    clip_version: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # Renewed by the running worker; an open run whose lease has passed belongs to a dead one.
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)

    __table_args__ = (Index("ix_stage_runs_open", "clip_id", "clip_version", "stage"),)


class Event(Base):
    """Append-only log: who did what to which clip, when."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    clip_id: Mapped[int | None] = mapped_column(ForeignKey("clips.id"), index=True, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TranscriptRow(Base):
    """A clip's transcript header; segments hold the text and word timings."""

    __tablename__ = "transcripts"
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), primary_key=True)
    clip_version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="en")
    engine: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(256))
    edited_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SegmentRow(Base):
    """One transcript segment on the clip timeline; `words` is [[start, end, word], ...]."""

    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    words: Mapped[list[Any]] = mapped_column(default=list)
    __table_args__ = (UniqueConstraint("clip_id", "idx"),)


class RenderRow(Base):
    """A social render of a clip: shape, fit, caption style, file and checksum."""

    __tablename__ = "renders"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    format: Mapped[str] = mapped_column(String(8))
    fit: Mapped[str] = mapped_column(String(8))
    captions: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(Text)
    duration: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Publication(Base):
    """Where a clip was posted."""

    __tablename__ = "publications"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A dashboard account; password hashed with argon2."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    timezone: Mapped[str | None] = mapped_column(String(64), nullable=True)  # None: the default
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)  # rota reminders


class LoginSession(Base):
    """A dashboard session token (stored hashed) with its expiry."""

    __tablename__ = "login_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


Index("ix_clips_source_status", Clip.source_id, Clip.status)


class Channel(Base):
    """A live source Clipper records as a rolling archive: its name, URL and how it is doing.

    `state` is what the recorder last saw (recording | stalled | error); `paused` is the admin's
    switch, so the status people see is "paused" whenever it is set. `clock` says where segment
    times come from: the broadcaster's EXT-X-PROGRAM-DATE-TIME, or the segments' arrival.
    """

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    url: Mapped[str] = mapped_column(Text)
    retention_hours: Mapped[float | None] = mapped_column(Float, nullable=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="recording")
    clock: Mapped[str] = mapped_column(String(20), default="arrival")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_segment_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Live transcription asked for (None: off; whisper | captions | auto) and what is used.
    transcribe: Mapped[str | None] = mapped_column(String(16), nullable=True)
    transcript_source: Mapped[str | None] = mapped_column(String(16), nullable=True)


class ChannelSegment(Base):
    """One recorded piece of a channel, stored unchanged. Times are Unix seconds (UTC):
    `wall_start` is the wall-clock time of the segment's first sample, whose presentation
    timestamp is `first_pts` (90 kHz ticks, as in the stream: it may wrap at 2^33)."""

    __tablename__ = "channel_segments"
    __table_args__ = (Index("ix_channel_segments_channel_wall", "channel_id", "wall_start"),
                      UniqueConstraint("channel_id", "path"))
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    wall_start: Mapped[float] = mapped_column(Float)
    duration: Mapped[float] = mapped_column(Float)
    first_pts: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    discontinuity: Mapped[bool] = mapped_column(Boolean, default=False)
    bytes: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(Text)
    arrived_at: Mapped[datetime] = mapped_column(default=utcnow)


class Shift(Base):
    """A rota shift: a channel watched from `start` to `end` (UTC) by `needs` people.
    Shifts of one weekly repeat share a `series_id`; a cancelled shift is kept, not deleted."""

    __tablename__ = "shifts"
    __table_args__ = (Index("ix_shifts_start_end", "start", "end"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"),
                                            index=True)
    start: Mapped[datetime] = mapped_column()
    end: Mapped[datetime] = mapped_column()
    needs: Mapped[int] = mapped_column(Integer, default=1)
    note: Mapped[str] = mapped_column(Text, default="")
    series_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Signup(Base):
    """One person on one shift: signed | cancelled | checked_in | missed."""

    __tablename__ = "signups"
    __table_args__ = (UniqueConstraint("shift_id", "user_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shifts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="signed")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    checked_in_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SentReminder(Base):
    """A rota reminder or alert already delivered on one channel (email or webhook), so a
    restart never sends it twice; `key` like "shift-12:user-3:24h/email"."""

    __tablename__ = "sent_reminders"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # 24h | 1h | short | late-cancel
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """A webhook notification waiting to be (or already) delivered: written in the same database
    as the change it reports, so none is lost to a restart, and posted by the deliverer
    (clipper.pipeline.notifications.deliver_due) until the hook says 2xx or it gives up.
    `state`: pending | delivered | given_up. A deliverer holds a pending row it is posting by
    `claim_token` until `claimed_until`, so two deliverers never post one message together."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(64))  # clip.ready, rota.shift_changed, ...
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column()
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)


class LoginThrottle(Base):
    """Failed logins counted per key — a name from one client address, a client address, a
    name from anywhere — so guessing is slowed where it comes from, and a lock never says
    whether the name exists (unknown names are counted the same way)."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LiveSegment(Base):
    """A piece of a channel's live transcript on its wall clock (Unix seconds): `words` is
    [[start, end, word], ...]; `source` whisper or captions."""

    __tablename__ = "live_segments"
    __table_args__ = (Index("ix_live_segments_channel_wall", "channel_id", "wall_start"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    wall_start: Mapped[float] = mapped_column(Float)
    wall_end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    words: Mapped[list[Any]] = mapped_column(default=list)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveAsrState(Base):
    """How far a channel's live transcript has got: transcribed up to `done_until` (Unix
    seconds), `lag_seconds` behind the recording, `load` compute/elapsed of the last windows."""

    __tablename__ = "live_asr_state"
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"),
                                            primary_key=True)
    done_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    lag_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    load: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Watch(Base):
    """A watch-list entry: a search-language query on the live transcripts of some channels
    (None: all), alerting the team (or `notify_url`) and optionally filing a flag."""

    __tablename__ = "watches"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    query: Mapped[str] = mapped_column(Text)
    channels: Mapped[list[Any] | None] = mapped_column(nullable=True)
    auto_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """A watch matched on a channel: when (wall clock), the words in context, and the flag
    and clip it filed (auto-flag). Kept after its watch is removed, so names not ids."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_watch_channel_wall", "watch", "channel", "wall_start"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    watch: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(40))
    wall_start: Mapped[float] = mapped_column(Float)
    wall_end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    flag_id: Mapped[int | None] = mapped_column(ForeignKey("flags.id"), nullable=True)
    clip_id: Mapped[int | None] = mapped_column(ForeignKey("clips.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ApiToken(Base):
    """A personal token a user made for themselves: `kind` api (Bearer, carries their role) or
    calendar (a private iCalendar feed URL). Stored hashed; revoked, never deleted."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class SlackLink(Base):
    """A Slack user linked to a Clipper user (by a one-time code from the dashboard)."""

    __tablename__ = "slack_links"
    slack_team: Mapped[str] = mapped_column(String(64), primary_key=True)
    slack_user: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlackLinkCode(Base):
    """A one-time code a user shows in Slack to link their Slack account (stored hashed)."""

    __tablename__ = "slack_link_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column()


class SlackSeen(Base):
    """Signatures of Slack requests already handled, so a replay inside the 5-minute window is
    refused."""

    __tablename__ = "slack_seen"
    signature: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SlackReply(Base):
    """A flag filed from Slack whose clip is to be posted back to the command's `response_url`
    when ready (or failed). `state`: waiting | sent | failed."""

    __tablename__ = "slack_replies"
    id: Mapped[int] = mapped_column(primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id"))
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    response_url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Delivery(Base):
    """A package copied to the team's shared drive (rclone): where from, where to, how it went.
    `state`: pending | delivered | failed."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(ForeignKey("clips.id"), index=True)
    source_path: Mapped[str] = mapped_column(Text)
    remote_path: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
