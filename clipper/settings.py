"""Settings: every environment variable Clipper reads, built once into one object."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clipper.errors import InvalidInput


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as text) and help."""

    env: str
    attr: str
    default: str
    help: str
    parse: Callable[[str], Any] = str


def _float(text: str) -> float:
    return float(text)


def _int(text: str) -> int:
    return int(text)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _csv(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _zone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {text!r}; use an IANA name such as Europe/London") \
            from exc
    return text


def _bool(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


# An rclone remote name: letters, digits, `_`, `-`, `.` and spaces, not starting with `-` or a
# space. `:backend,opt=...:path` (a remote given on the spot) starts with the colon.
_RCLONE_REMOTE = re.compile(r"(?:[\w.][\w. -]*|:[^:]*):", re.ASCII)


def _share_remote(text: str) -> str:
    """`REMOTE:PATH` for rclone, `{date}` and `{clip}` the only placeholders; "" for none."""
    text = text.strip()
    if not text:
        return ""
    if not _RCLONE_REMOTE.match(text):
        raise ValueError("expected an rclone remote and path such as `teamdrive:Clips/{date}` "
                         "(a bare path would copy to this machine's own disk)")
    try:
        text.format(date="2026-01-01", clip=1)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"only {{date}} and {{clip}} may be filled in ({exc!r})") from exc
    return text


SETTINGS: tuple[Setting, ...] = (
    Setting("CLIPPER_HOME", "home", "~/.clipper", "Data directory: database, embedded Redis, "
            "media, exports."),
    Setting("REDIS_URL", "redis_url", "", "External Redis (`redis://host:6379/0`). "
            "Unset: `clipper up` starts an embedded Redis under `CLIPPER_HOME/redis`."),
    Setting("DATABASE_URL", "database_url", "",
            "SQLAlchemy URL (`postgresql+psycopg://user@host/db`). "
            "Unset: SQLite (WAL) at `CLIPPER_HOME/clipper.db`."),
    Setting("CLIPPER_MEDIA_DIR", "media_dir", "", "Where fetched sections and clips are stored. "
            "Unset: `CLIPPER_HOME/media`."),
    Setting("CLIPPER_EXPORTS_DIR", "exports_dir", "", "Where distribution packages are written. "
            "Unset: `CLIPPER_HOME/exports`."),
    Setting("CLIPPER_MAX_CLIP_SECONDS", "max_clip_seconds", "600", "Longest clip a flag may ask "
            "for, in seconds.", _float),
    Setting("CLIPPER_MAX_UPLOAD_MB", "max_upload_mb", "500", "Largest recording the dashboard "
            "accepts as an upload, in MB (the browser's upload is held in memory while it "
            "arrives).", _float),
    Setting("CLIPPER_PAD_SECONDS", "pad_seconds", "2", "Extra seconds fetched either side of a "
            "flag, so trims and merges need no re-fetch.", _float),
    Setting("CLIPPER_URL_ALLOWLIST", "url_allowlist", "",
            "Comma-separated hosts or CIDRs that may be fetched even though they are "
            "private/loopback (e.g. `127.0.0.1,newsroom.lan`).", _csv),
    Setting("CLIPPER_FETCH_TRIES", "fetch_tries", "3", "Attempts for a fetch that fails with a "
            "network error (backoff doubles from 0.5 s).", _int),
    Setting("CLIPPER_JOB_TIMEOUT", "job_timeout", "900", "Seconds after which a stuck job is "
            "killed.", _int),
    Setting("CLIPPER_RECONCILE_SECONDS", "reconcile_seconds", "30", "How often `clipper up` "
            "re-enqueues clips whose job was lost (Redis restart, killed worker).", _float),
    Setting("CLIPPER_LEASE_SECONDS", "lease_seconds", "30", "A running stage renews its lease "
            "in the database every third of this; one not renewed for this long is re-run, on "
            "any host.", _float),
    Setting("CLIPPER_STAGE_ATTEMPTS", "stage_attempts", "4", "Runs of one stage of one clip "
            "that may end in a temporary error or a lost worker before the clip is failed.", _int),
    Setting("CLIPPER_WHISPER_ENGINE", "whisper_engine", "faster-whisper", "Speech-to-text engine: "
            "`faster-whisper` or `openai-whisper`."),
    Setting("CLIPPER_WHISPER_MODEL", "whisper_model", "", "Model: a faster-whisper model "
            "directory, or an openai-whisper checkpoint file. Unset: the shipped `tiny.en`."),
    Setting("CLIPPER_WHISPER_DEVICE", "whisper_device", "cpu", "`cpu` (int8) or `cuda`."),
    Setting("CLIPPER_WHISPER_BEAM_SIZE", "whisper_beam_size", "1",
            "Beam size for decoding: 1 (greedy) is ~20% faster than 5 with the same words on clear "
            "speech; raise it for noisy audio.", _int),
    Setting("CLIPPER_WHISPER_THREADS", "whisper_threads", "1", "CPU threads per transcription "
            "(1 is fastest on 2-vCPU machines).", _int),
    Setting("CLIPPER_WEBHOOK_URL", "webhook_url", "", "Slack-compatible webhook notified when a "
            "clip is ready and when a package is exported."),
    Setting("CLIPPER_WEBHOOK_TIMEOUT", "webhook_timeout", "10", "Seconds one post to a webhook "
            "may take in all (connecting, sending, the answer) before it is abandoned and tried "
            "again later: a hook that answers slowly holds the next messages up this long.",
            _positive_float),
    Setting("CLIPPER_BASE_URL", "base_url", "", "Public address of the dashboard, "
            "used for links in notifications."),
    Setting("CLIPPER_SLACK_SIGNING_SECRET", "slack_signing_secret", "", "Signing secret of the "
            "team's Slack app (its Basic Information page): `/clip` and the review channel's "
            "Approve / Reject buttons are checked with it. Unset: the Slack endpoints refuse "
            "every request."),
    Setting("CLIPPER_SESSION_MINUTES", "session_minutes", "720", "Dashboard login sessions expire "
            "after this many minutes.", _float),
    Setting("CLIPPER_CLAIM_MINUTES", "claim_minutes", "15", "A review claim lapses after this many "
            "minutes of inactivity.", _float),
    Setting("CLIPPER_LOG_LEVEL", "log_level", "INFO", "Python logging level for workers and "
            "`clipper up`."),
    Setting("CLIPPER_TIMEZONE", "timezone", "UTC", "Time zone of wall-clock times in channel "
            "flags (`19:42:10`) unless `--tz` says otherwise, e.g. `Europe/London`.", _zone),
    Setting("CLIPPER_RETENTION_HOURS", "retention_hours", "24", "Hours of each channel's "
            "recording kept (a channel may set its own); oldest segments go first.", _float),
    Setting("CLIPPER_MIN_FREE_GB", "min_free_gb", "2", "When free disk under the media folder "
            "falls below this, the oldest recordings are deleted first, whatever their retention.",
            _float),
    Setting("CLIPPER_STALL_SECONDS", "stall_seconds", "60", "A channel that delivers nothing for "
            "this long is marked `stalled` and the team's webhook is told.", _float),
    Setting("CLIPPER_ROTA_LATE_CANCEL_HOURS", "rota_late_cancel_hours", "3", "A volunteer may "
            "cancel a rota shift on their own until this many hours before it starts; later "
            "needs a coordinator.", _float),
    Setting("CLIPPER_SMTP_URL", "smtp_url", "", "Mail server for rota reminders and alerts: "
            "`smtp://user:pass@host:587` (STARTTLS when the server offers it) or "
            "`smtps://host:465` (TLS from the start). Unset: no email. Admin configuration: "
            "the host is not checked like flag URLs."),
    Setting("CLIPPER_SMTP_FROM", "smtp_from", "clipper@localhost", "Sender address of "
            "rota emails."),
    Setting("CLIPPER_API_PORT", "api_port", "8502", "Port of the HTTP API (`clipper up` serves "
            "it beside the dashboard; `clipper api` alone).", _positive_int),
    Setting("CLIPPER_API_RATE", "api_rate", "120", "Requests a minute each API token (and each "
            "address without one) may make, in bursts of up to that many; more get `429` with "
            "`Retry-After`. Counted per API process.", _positive_int),
    Setting("CLIPPER_SHARE_REMOTE", "share_remote", "", "Where `clipper up` copies every "
            "exported package with rclone: `REMOTE:PATH`, e.g. `teamdrive:Clips/{date}` (`{date}` "
            "is the export's date in `CLIPPER_TIMEZONE`, `{clip}` the clip id); the package "
            "folder goes inside it under its own name. Unset: no delivery.", _share_remote),
    Setting("CLIPPER_RCLONE_CONFIG", "rclone_config", "", "rclone config file holding that "
            "remote. Unset: rclone's own default (`~/.config/rclone/rclone.conf`, or "
            "`RCLONE_CONFIG`), plus remotes given as `RCLONE_CONFIG_<NAME>_*` variables."),
)


@dataclass(frozen=True)
class Settings:
    """Every setting, resolved; build with `Settings.from_env()` at the edge and pass it down."""

    home: Path
    redis_url: str
    database_url: str
    media_dir: Path
    exports_dir: Path
    max_clip_seconds: float
    pad_seconds: float
    max_upload_mb: float
    url_allowlist: tuple[str, ...]
    fetch_tries: int
    job_timeout: int
    reconcile_seconds: float
    lease_seconds: float
    stage_attempts: int
    whisper_engine: str
    whisper_model: str
    whisper_device: str
    whisper_beam_size: int
    whisper_threads: int
    webhook_url: str
    webhook_timeout: float
    base_url: str
    slack_signing_secret: str = field(repr=False)  # a secret: kept out of logs
    session_minutes: float
    claim_minutes: float
    log_level: str
    timezone: str
    retention_hours: float
    min_free_gb: float
    stall_seconds: float
    rota_late_cancel_hours: float
    smtp_url: str
    smtp_from: str
    api_port: int
    api_rate: int
    share_remote: str
    rclone_config: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = env.get(s.env, "") or s.default
            try:
                values[s.attr] = s.parse(raw)
            except ValueError as exc:
                raise InvalidInput(f"{s.env}={raw!r} is not valid ({exc}).",
                                   f"Default: {s.default!r}.") from exc
        values.update(overrides)
        home = Path(values["home"]).expanduser().resolve()
        values["home"] = home
        values["media_dir"] = (Path(values["media_dir"]).expanduser() if values["media_dir"]
                               else home / "media")
        values["exports_dir"] = (Path(values["exports_dir"]).expanduser() if values["exports_dir"]
                                 else home / "exports")
        if not values["database_url"]:
            values["database_url"] = f"sqlite:///{home / 'clipper.db'}"
        if values["whisper_engine"] not in ("faster-whisper", "openai-whisper"):
            raise InvalidInput(
                f"CLIPPER_WHISPER_ENGINE={values['whisper_engine']!r} "
                "is not an engine Clipper knows.",
                "Use faster-whisper or openai-whisper.",
            )
        return cls(env=env, **values)

    @property
    def redis_dir(self) -> Path:
        return self.home / "redis"

    @property
    def redis_socket(self) -> Path:
        return self.redis_dir / "redis.sock"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def child_env(self) -> dict[str, str]:
        """Environment for processes Clipper starts, so they resolve the same settings."""
        env = dict(self.env)
        env["CLIPPER_HOME"] = str(self.home)
        return env
