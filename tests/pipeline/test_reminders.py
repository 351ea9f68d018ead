"""Rota reminders and alerts against a real SMTP server (aiosmtpd) and a real webhook server on
loopback, on both databases, with a clock moved by hand: each arrives once, a restart (a second
run) sends nothing again, late cancellations and short shifts alert coordinators, missed shifts
are counted."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import socket
import ssl
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from clipper import reminders
from clipper.net.mail import MailError, send_mail
from clipper.permissions import Actor
from clipper.pipeline.reminders import run_reminders
from clipper.services import rota
from clipper.services.channels import add_channel
from clipper.services.users import add_user, set_email, set_timezone
from clipper.storage.tables import SentReminder
from tests.net.test_webhook import hook_server, url_of

OP = Actor.operator()
URL = "http://127.0.0.1:9/live/index.m3u8"


class _Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], str, bool]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        body = envelope.content.decode("utf8", "replace")
        self.mails.append((list(envelope.rcpt_tos), body, session.ssl is not None))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = _Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    ctl.start()
    try:
        yield ctl, inbox
    finally:
        ctl.stop()


def test_pure_decisions() -> None:
    start = datetime(2027, 3, 21, 19, tzinfo=UTC)
    assert reminders.volunteer_due(start, start - timedelta(hours=25)) is None
    assert reminders.volunteer_due(start, start - timedelta(hours=24)) == "24h"
    assert reminders.volunteer_due(start, start - timedelta(hours=2)) == "24h"
    assert reminders.volunteer_due(start, start - timedelta(minutes=30)) == "1h"
    assert reminders.volunteer_due(start, start) is None  # started: too late
    assert reminders.short_due(start, 2, 1, start - timedelta(hours=23))
    assert not reminders.short_due(start, 2, 2, start - timedelta(hours=23))
    assert not reminders.short_due(start, 2, 1, start - timedelta(hours=25))
    assert reminders.key(12, "24h", user_id=3) == "shift-12:user-3:24h"


def test_pure_change_notices() -> None:
    """Who hears of a shift change, when, and what the email says in their own zone."""
    start = datetime(2027, 3, 21, 19, tzinfo=UTC)
    end = start + timedelta(hours=2)
    edited = {"shift_id": 4, "volunteers": ["ann", "bob", "dan"],
              "before": {"start": "2027-03-21T18:00:00Z", "end": "2027-03-21T20:00:00Z",
                         "needs": 2, "note": ""},
              "changed": {"start": "2027-03-21T19:00:00Z", "end": "2027-03-21T21:00:00Z",
                          "needs": 3, "note": "leaders' debate"}}
    # bob was taken off after the edit: he hears of that instead.
    assert reminders.change_recipients("rota.edited", edited, {"ann", "dan", "eve"}) == [
        "ann", "dan"]
    assert reminders.change_recipients("rota.shift_cancelled", {"volunteers": ["ann"]},
                                       set()) == ["ann"]
    assert reminders.change_recipients("rota.removed", {"user": "bob"}, {"ann"}) == ["bob"]
    assert reminders.change_recipients("rota.signup", {"user": "bob"}, {"bob"}) == []
    made = start - timedelta(days=2)
    assert reminders.change_due(made, end, made + timedelta(minutes=1))
    assert not reminders.change_due(made, end, end)  # the shift is over: stale news
    assert not reminders.change_due(made - timedelta(days=7), end,
                                    made + timedelta(minutes=1))  # older than the window
    assert reminders.person_zone("Asia/Tokyo", "UTC") == "Asia/Tokyo"
    assert reminders.person_zone("Mars/Base", "Europe/London") == "Europe/London"
    assert reminders.person_zone(None, "UTC") == "UTC"
    assert reminders.span(start, end, "Asia/Tokyo") == (
        "Mon 22 Mar 04:00–06:00 (Asia/Tokyo)")
    assert reminders.span(start, start + timedelta(hours=6), "UTC") == (
        "Sun 21 Mar 19:00–Mon 22 Mar 01:00 (UTC)")
    subject, text = reminders.change_message(
        "changed", name="ann", channel="news", tz="Europe/London", start=start, end=end,
        by="cat", before=edited["before"], changed=edited["changed"])
    assert subject == "Clipper: your shift on news was changed"
    assert "Now: Sun 21 Mar 19:00–21:00 (Europe/London)" in text
    assert "Was: Sun 21 Mar 18:00–20:00 (Europe/London)" in text
    assert "People needed: 3 (was 2)" in text and "Note: leaders' debate" in text
    _, only_note = reminders.change_message(
        "changed", name="ann", channel="news", tz="UTC", start=start, end=end, by="cat",
        before=edited["before"], changed={"note": ""})
    assert "Was:" not in only_note and "The note was removed." in only_note
    subject, text = reminders.change_message("cancelled", name="ann", channel="news",
                                             tz="UTC", start=start, end=end, by="cat")
    assert "cancelled" in subject and "Sun 21 Mar 19:00–21:00 (UTC) was cancelled by cat" in text
    subject, text = reminders.change_message("removed", name="bob", channel="news",
                                             tz="UTC", start=start, end=end, by="cat")
    assert subject == "Clipper: you are off the shift on news" and "cat took you off" in text


def test_pure_reminder_and_alert_texts_in_a_zone() -> None:
    start = datetime(2027, 3, 21, 19, tzinfo=UTC)
    end = start + timedelta(hours=2)
    assert reminders.reminder_message("24h", name="ann", channel="news", tz="Asia/Tokyo",
                                      start=start, end=end, note="leaders' debate") == (
        "Clipper: your shift on news",
        "Reminder: ann, your shift watching news is Mon 22 Mar 04:00–06:00 (Asia/Tokyo), "
        "starting in about 24h. Note: leaders' debate")
    assert reminders.reminder_message("1h", name="bob", channel="news", tz="UTC", start=start,
                                      end=end)[1].endswith("(UTC), starting in about 1h.")
    assert reminders.short_message(shift_id=4, channel="news", tz="America/New_York",
                                   start=start, end=end, needs=2, people=1) == (
        "Clipper: shift on news is short",
        "Shift 4 on news, Sun 21 Mar 15:00–17:00 (America/New_York), is short: 1 of 2 people.")
    assert reminders.late_cancel_message(shift_id=4, channel="news", tz="Europe/London",
                                         start=start, end=end, user="bob") == (
        "Clipper: late cancellation on news",
        "Late cancellation: bob is off shift 4 on news, Sun 21 Mar 19:00–21:00 (Europe/London).")


def test_reminders_and_alerts_read_in_each_persons_zone(ctx, smtp) -> None:
    """Each volunteer's reminder in their zone (theirs, else CLIPPER_TIMEZONE, not UTC); each
    coordinator's alert by email in theirs, once each; the team's webhook in
    CLIPPER_TIMEZONE, once."""
    ctl, inbox = smtp
    with hook_server([]) as hook:
        ctx.settings = dataclasses.replace(
            ctx.settings, smtp_url=f"smtp://127.0.0.1:{ctl.port}", webhook_url=url_of(hook),
            timezone="Europe/London")
        add_channel(ctx, OP, "news", URL)
        zones = {"ann": "Asia/Tokyo", "bob": None, "cat": "America/New_York", "cy": None}
        for name, tz in zones.items():
            add_user(ctx, OP, name, "coordinator" if name in ("cat", "cy") else "volunteer",
                     "password-1234")
            set_email(ctx, OP, name, f"{name}@example.org")
            if tz:
                set_timezone(ctx, OP, name, tz)
        start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0,
                                                                microsecond=0)
        sid = rota.add_shifts(ctx, OP, "news", start.isoformat(),
                              (start + timedelta(hours=2)).isoformat(), needs=3)[0]
        for name in ("ann", "bob"):
            rota.signup(ctx, OP, sid, name)

        def local(name: str) -> str:
            """The shift's start as `name` reads it, with the zone."""
            tz = zones[name] or "Europe/London"
            return f"{start.astimezone(ZoneInfo(tz)):%a %d %b %H:%M}–"

        def mails() -> dict[str, str]:
            """Recipient name -> the text of their one email, decoded (quoted-printable)."""
            got = {rcpt[0].split("@")[0]: email.message_from_string(
                body, policy=email.policy.default).get_content()
                for rcpt, body, _ in inbox.mails}
            assert len(got) == len(inbox.mails)  # one each
            return got

        assert run_reminders(ctx, start - timedelta(hours=23))["sent"] == 7
        assert run_reminders(ctx, start - timedelta(hours=23))["sent"] == 0  # as after a restart
        got = mails()
        assert sorted(got) == ["ann", "bob", "cat", "cy"]
        for name in zones:
            zone = zones[name] or "Europe/London"
            assert local(name) in got[name] and f"({zone})" in got[name], (name, got[name])
            assert "UTC" not in got[name]
        assert "starting in about 24h" in got["ann"] and "is short: 2 of 3" in got["cat"]
        posted = {b.get("kind") or b["event"]: b["text"] for _, b in hook.bodies
                  if b.get("user") != "bob"}
        assert len(hook.bodies) == 3
        assert local("ann") in posted["24h"] and "(Asia/Tokyo)" in posted["24h"]  # ann's own
        assert local("cy") in posted["rota.short"] and "(Europe/London)" in posted["rota.short"]

        inbox.mails.clear()
        rota.cancel_signup(ctx, OP, sid, "bob", at=start - timedelta(hours=2))
        run_reminders(ctx, start - timedelta(hours=1, minutes=50))
        run_reminders(ctx, start - timedelta(hours=1, minutes=50))
        got = mails()
        assert sorted(got) == ["cat", "cy"]  # ann's 1 h reminder is not due yet
        assert all("Late cancellation: bob is off shift" in got[n] and local(n) in got[n]
                   for n in ("cat", "cy"))
        assert [b["event"] for _, b in hook.bodies[3:]] == ["rota.late_cancel"]
        assert "(Europe/London)" in hook.bodies[3][1]["text"]
        with ctx.db.session() as session:
            keys = set(session.scalars(select(SentReminder.key)))
        assert f"shift-{sid}:short/webhook" in keys
        assert sum(k.startswith(f"shift-{sid}:user-") and k.endswith(":short/email")
                   for k in keys) == 2


def test_shift_changes_are_emailed_once_to_each_person(ctx, smtp) -> None:
    """Edit, take someone off, edit again, cancel: each person on the shift (with an address)
    gets one email per change, in their own zone; passes after that (as after a restart) send
    nothing; the team's webhook is not posted to again by the pass."""
    ctl, inbox = smtp
    with hook_server([]) as hook:
        ctx.settings = dataclasses.replace(
            ctx.settings, smtp_url=f"smtp://127.0.0.1:{ctl.port}", webhook_url=url_of(hook))
        add_channel(ctx, OP, "news", URL)
        for name, role in (("ann", "volunteer"), ("bob", "volunteer"), ("dan", "volunteer"),
                           ("cat", "coordinator")):
            add_user(ctx, OP, name, role, "password-1234")
            if name != "dan":  # dan has no address: nothing to send him
                set_email(ctx, OP, name, f"{name}@example.org")
        set_timezone(ctx, OP, "ann", "Asia/Tokyo")
        cat = Actor("cat", "coordinator")
        # Three days out at 10:00 UTC: no 24 h reminder or short-shift alert is due yet.
        start = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0,
                                                                microsecond=0)
        sid = rota.add_shifts(ctx, cat, "news", start.isoformat(),
                              (start + timedelta(hours=2)).isoformat(), needs=3)[0]
        for name in ("ann", "bob", "dan"):
            rota.signup(ctx, cat, sid, name)

        def passes() -> list[tuple[list[str], str, bool]]:
            """Two passes (the second as after a restart); the mails the first one sent."""
            seen = len(inbox.mails)
            first = run_reminders(ctx)
            assert run_reminders(ctx)["sent"] == 0
            assert first["sent"] == len(inbox.mails) - seen
            return inbox.mails[seen:]

        assert passes() == []
        rota.edit_shift(ctx, cat, sid, end=(start + timedelta(hours=3)).isoformat(),
                        note="leaders' debate")
        mails = {rcpt[0]: body for rcpt, body, _ in passes()}
        assert sorted(mails) == ["ann@example.org", "bob@example.org"]
        tokyo = (start + timedelta(hours=9)).strftime("%H:%M")
        assert f"{tokyo}–" in mails["ann@example.org"] and "(Asia/Tokyo)" in mails[
            "ann@example.org"]
        assert "Now: " in mails["bob@example.org"] and "13:00 (UTC)" in mails["bob@example.org"]
        assert "Subject: Clipper: your shift on news was changed" in mails["bob@example.org"]
        assert "Note: leaders' debate" in mails["bob@example.org"]

        rota.remove_person(ctx, cat, sid, "bob")
        mails = passes()
        assert [m[0] for m in mails] == [["bob@example.org"]]
        assert "cat took you off the shift watching news" in mails[0][1]

        rota.edit_shift(ctx, cat, sid, needs=2)  # bob is off it now: ann alone hears
        assert [m[0] for m in passes()] == [["ann@example.org"]]

        rota.cancel_shift(ctx, cat, sid)
        mails = passes()
        assert [m[0] for m in mails] == [["ann@example.org"]]
        assert "Subject: Clipper: your shift on news is cancelled" in mails[0][1]
        assert len(inbox.mails) == 5
        with ctx.db.session() as s:
            keys = s.scalars(select(SentReminder.key).order_by(SentReminder.id)).all()
        assert len(keys) == 5 and all(k.endswith("/email") and ":event-" in k for k in keys)
        assert hook.bodies == []  # the changes wait in the outbox; the pass posted none


def test_reminders_alerts_once_and_missed(ctx, smtp) -> None:
    ctl, inbox = smtp
    with hook_server([]) as hook:
        ctx.settings = dataclasses.replace(
            ctx.settings, smtp_url=f"smtp://127.0.0.1:{ctl.port}", webhook_url=url_of(hook))
        add_channel(ctx, OP, "news", URL)
        for name, role in (("ann", "volunteer"), ("bob", "volunteer"), ("cat", "coordinator")):
            add_user(ctx, OP, name, role, "password-1234")
            set_email(ctx, OP, name, f"{name}@example.org")
        t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
        start, end = t0, t0 + timedelta(hours=2)
        sid = rota.add_shifts(ctx, OP, "news", start.isoformat(), end.isoformat(), needs=2)[0]
        rota.signup(ctx, OP, sid, "ann")
        rota.signup(ctx, OP, sid, "bob")

        def run(at: datetime) -> None:
            for _ in range(2):  # a second run, as after a restart, sends nothing again
                run_reminders(ctx, at)

        def kinds() -> list[str]:
            return [b.get("kind") or b["event"] for _, b in hook.bodies]

        run(start - timedelta(hours=25))
        assert inbox.mails == [] and hook.bodies == []
        run(start - timedelta(hours=23, minutes=59))
        assert sorted(r[0] for r, _, _ in inbox.mails) == ["ann@example.org", "bob@example.org"]
        assert kinds() == ["24h", "24h"]
        assert "news" in inbox.mails[0][1]
        # bob cancels late (a coordinator takes him off): coordinators hear once, and the
        # shift is now short, which they hear once too.
        rota.cancel_signup(ctx, OP, sid, "bob", at=start - timedelta(hours=2))
        run(start - timedelta(hours=1, minutes=50))
        assert sorted(kinds()) == sorted(["24h", "24h", "rota.late_cancel", "rota.short"])
        assert [r for r, _, _ in inbox.mails[2:]] == [["cat@example.org"], ["cat@example.org"]]
        # Down from 1 h 50 until 30 min before: the 1 h reminder still goes, once, to ann only.
        run(start - timedelta(minutes=30))
        assert kinds()[-1] == "1h" and kinds().count("1h") == 1
        assert inbox.mails[-1][0] == ["ann@example.org"] and len(inbox.mails) == 5
        run(start + timedelta(minutes=5))  # started: nothing more
        assert len(inbox.mails) == 5 and len(hook.bodies) == 5
        # ann never checked in: after the end she has missed it.
        assert rota.stats(ctx, OP, "ann")["missed"] == 0
        run(end)
        assert rota.stats(ctx, OP, "ann")["missed"] == 1
        assert len(inbox.mails) == 5 and len(hook.bodies) == 5


def test_mail_server_down_is_retried_not_lost(ctx, smtp) -> None:
    ctl, inbox = smtp
    port = _free_port()  # nothing listens here
    ctx.settings = dataclasses.replace(ctx.settings, smtp_url=f"smtp://127.0.0.1:{port}",
                                       webhook_url="")
    add_channel(ctx, OP, "news", URL)
    add_user(ctx, OP, "ann", "volunteer", "password-1234")
    set_email(ctx, OP, "ann", "ann@example.org")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    sid = rota.add_shifts(ctx, OP, "news", start.isoformat(),
                          (start + timedelta(hours=1)).isoformat())[0]
    rota.signup(ctx, OP, sid, "ann")
    assert run_reminders(ctx, start - timedelta(hours=3))["sent"] == 0
    ctx.settings = dataclasses.replace(ctx.settings, smtp_url=f"smtp://127.0.0.1:{ctl.port}")
    assert run_reminders(ctx, start - timedelta(hours=2))["sent"] == 1
    assert run_reminders(ctx, start - timedelta(hours=2))["sent"] == 0
    assert len(inbox.mails) == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("smtp-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.mark.services  # openssl makes the certificate; aiosmtpd serves on loopback
def test_starttls_used_when_offered(tls_files) -> None:
    cert, key = tls_files
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    inbox = _Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=_free_port(), tls_context=server_ctx,
                     auth_require_tls=True, auth_exclude_mechanism=["CRAM-MD5"],
                     authenticator=lambda *a: AuthResult(success=True))
    ctl.start()
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        send_mail(f"smtp://u:p%40ss@127.0.0.1:{ctl.port}", "clipper@localhost",
                  ["ann@example.org"], "hi", "body", context=client_ctx)
        assert len(inbox.mails) == 1 and inbox.mails[0][2] is True  # over TLS
        # An untrusted certificate is refused with a clear reason.
        with pytest.raises(MailError, match="TLS"):
            send_mail(f"smtp://127.0.0.1:{ctl.port}", "clipper@localhost",
                      ["ann@example.org"], "hi", "body", context=ssl.create_default_context())
    finally:
        ctl.stop()


def test_bad_url_and_no_tls_password() -> None:
    with pytest.raises(MailError, match="smtp://"):
        send_mail("http://x", "a@b", ["c@d"], "s", "b")
