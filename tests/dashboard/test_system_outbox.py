"""The System page shows the webhook outbox: pending, failing, given up, and the last errors."""

from __future__ import annotations

from pathlib import Path

from clipper.storage.tables import OutboxMessage

SYSTEM = Path(__file__).resolve().parents[2] / "dashboard" / "admin" / "system.py"


def test_system_page_shows_what_the_webhook_has_not_taken(desk, open_app):
    with desk.db.session() as s:
        s.add_all([
            OutboxMessage(event="clip.ready", url="http://127.0.0.1:9/hook", payload={"text": "a"}),
            OutboxMessage(event="clip.ready", url="http://127.0.0.1:9/hook", payload={"text": "b"},
                          attempts=2, last_error="Connection refused"),
            OutboxMessage(event="package.exported", url="http://127.0.0.1:9/hook",
                          payload={"text": "c"}, state="given_up", attempts=1,
                          last_error="HTTP 404"),
        ])
    at = open_app("ada", SYSTEM)
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Pending"], metrics["Failing"], metrics["Given up"]) == ("2", "1", "1")
    errors = list(at.dataframe[-1].value["last error"])
    assert "Connection refused" in errors and "HTTP 404" in errors
