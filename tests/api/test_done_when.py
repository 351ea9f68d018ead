"""The issue's "done when", each path against the real servers (the API under uvicorn on
loopback, a loopback HTTP site serving the broadcast, a loopback stand-in for Slack, `rclone
serve webdav` as the team's drive), on both databases:

(a) a token-authenticated flag over HTTP becomes a ready clip, its status the CLI's;
(b) a signed `/clip` posts the ready clip to a local `response_url`;
(c) an `Approve` press approves as the linked user;
(d) an exported package appears on the loopback rclone remote exactly once after the remote
    was down, and the status object's `delivered` says where.

tests/api/test_slack.py and tests/pipeline/test_delivery.py cover the same ground in depth
(refusals, failures, linking, backoff, two deliverers); these are the contract's paths end to
end. Jobs run in this process; time moves by passing `now=` to the deliverer, never by waiting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pipeline.test_delivery import NOTHING, contents, exported, free_port, sharing, webdav
from slackfake import link, ready_clip, status, with_slack
from sqlalchemy import select

from clipper.pipeline.delivery import deliver_packages
from clipper.pipeline.notifications import deliver_due
from clipper.services.slack import send_slack_replies
from clipper.storage.tables import Flag

pytestmark = [pytest.mark.services, pytest.mark.slow]

FLAG_KEYS = {"flag_id", "clip_id", "status", "merged"}


def test_a_token_authenticated_flag_over_http_becomes_a_ready_clip(api, ctx, cli, run_jobs,
                                                                   broadcast_site):
    base, _ = broadcast_site
    source = f"{base}/show.mp4"
    with api.client("vera") as c:
        r = c.post("/api/flags", json={"source": source, "start": "0:00", "end": "0:08",
                                       "note": "waiting lists", "tags": ["health"],
                                       "urgency": "high"})
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) == FLAG_KEYS and made["merged"] is False and made["status"] == "queued"
    assert r.headers["location"] == f"/api/clips/{made['clip_id']}"
    # The answer is what `clipper flag --json` prints for the same moment (which joins it).
    code, out, _ = cli("flag", source, "--start", "0:01", "--end", "0:07", "--json")
    joined = json.loads(out)
    assert code == 0 and set(joined) == FLAG_KEYS
    assert (joined["clip_id"], joined["merged"]) == (made["clip_id"], True)

    run_jobs(ctx)

    with api.client("vera") as c:
        got = c.get(f"/api/clips/{made['clip_id']}")
    assert got.status_code == 200
    clip = got.json()
    code, out, _ = cli("status", str(made["clip_id"]), "--json")
    assert code == 0 and clip == json.loads(out)
    assert clip["status"] == "ready", clip["error"]
    assert clip["flaggers"][0]["by"] == "vera" and clip["flaggers"][0]["urgency"] == "high"
    assert clip["transcript"]["text"] and clip["media_path"]
    assert clip["delivered"] is None and clip["delivery"] is None  # no drive set up

    # Its words are found over HTTP as on the command line.
    with api.client("sam") as c:
        hits = c.get("/api/search", params={"q": "health"}).json()
    code, out, _ = cli("search", "health", "--json")
    assert code == 0 and hits == json.loads(out)
    assert [h["clip_id"] for h in hits] == [made["clip_id"]]


def test_a_signed_slash_clip_posts_the_ready_clip_to_its_response_url(ctx, slack, hook,
                                                                      run_jobs, broadcast_site):
    base, _ = broadcast_site
    link(ctx, slack, "vera", "volunteer", "U0VERA")
    said = slack.command(f"{base}/show.mp4 0:00-0:08 health secretary", user="U0VERA",
                         reply="/commands/done-when")
    assert said["response_type"] == "ephemeral" and "filed as vera" in said["text"], said
    with ctx.db.session() as session:
        flag = session.scalars(select(Flag)).one()
        clip_id, by = flag.clip_id, flag.by
    assert by == "vera"

    run_jobs(ctx)
    with_slack(ctx, base_url="https://desk.example")
    assert send_slack_replies(ctx) == {"sent": 1, "expired": 0}
    assert deliver_due(ctx)["delivered"] == 1

    posts = dict(hook.posts)
    posted = posts["/commands/done-when"]
    assert posted["text"].startswith(f"Clip {clip_id} is ready: "), posted
    assert f"<https://desk.example/clip?id={clip_id}|open>" in posted["text"]
    assert any(b["type"] == "image" for b in posted["blocks"])  # the thumbnail


def test_an_approve_press_approves_as_the_linked_user(ctx, slack, hook, api):
    clip_id = ready_clip(ctx, "done-when")
    link(ctx, slack, "sam", "social", "U0SAM")
    said = slack.press("approve", clip_id, user="U0SAM", reply="/actions/sam")
    assert said["replace_original"] is True
    assert f"Approved by sam in Slack — clip {clip_id}" in said["text"]
    state, reviewed_by, _ = status(ctx, clip_id)
    assert state in ("approved", "rendering") and reviewed_by == "sam"
    with api.client("sam") as c:
        assert c.get(f"/api/clips/{clip_id}").json()["status"] == state
    assert deliver_due(ctx)["delivered"] == 1
    assert [path for path, _ in hook.posts] == ["/actions/sam"]


def test_an_exported_package_lands_on_the_drive_once_after_it_was_down(api, ctx, cli,
                                                                        tmp_path):
    port = free_port()
    sharing(ctx, port, tmp_path)  # teamdrive:Clips/{date}, at a port nothing listens on yet
    clip_id, package = exported(ctx, tmp_path)

    def shown() -> dict[str, Any]:
        with api.client("sam") as c:
            st = c.get(f"/api/clips/{clip_id}").json()
        code, out, _ = cli("status", str(clip_id), "--json")
        assert code == 0 and st == json.loads(out)
        return st

    t0 = datetime.now(UTC)
    assert deliver_packages(ctx, now=t0) == {**NOTHING, "retrying": 1}  # the drive is down
    down = shown()
    day = down["delivery"]["path"].split("/")[1]  # the export's day, in CLIPPER_TIMEZONE
    assert down["delivered"] is None
    assert down["delivery"]["path"] == f"Clips/{day}/{package.name}"
    assert down["delivery"]["state"] == "pending" and "connection refused" in \
        down["delivery"]["error"]

    with webdav(tmp_path / "drive", port) as served:
        back = t0 + timedelta(seconds=11)
        assert deliver_packages(ctx, now=back) == {**NOTHING, "delivered": 1}
        assert deliver_packages(ctx, now=back + timedelta(hours=1)) == NOTHING  # done is done
        assert [p.name for p in (served / "Clips").iterdir()] == [day]
        assert [p.name for p in (served / "Clips" / day).iterdir()] == [package.name]
        assert contents(served / "Clips" / day / package.name) == contents(package)

    st = shown()
    assert st["delivered"] == {"remote": "teamdrive", "path": f"Clips/{day}/{package.name}",
                               "at": back.isoformat()}
    assert st["delivery"]["state"] == "delivered" and st["delivery"]["attempts"] == 2
