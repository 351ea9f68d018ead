"""Every dashboard page under AppTest, for every role, including what each role must not reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper.permissions import Actor
from clipper.services import review
from clipper.services.clips import clip_events, clip_status
from clipper.storage.tables import Clip, Flag, Source

DASH = Path(__file__).resolve().parents[2] / "dashboard"
PAGE_FILES = {"flag": DASH / "volunteer/flag.py", "live": DASH / "volunteer/live.py",
              "review": DASH / "social/review.py",
              "search": DASH / "editor/search.py", "team": DASH / "admin/team.py",
              "system": DASH / "admin/system.py", "clip": DASH / "clip.py",
              "shifts": DASH / "volunteer/shifts.py", "rota": DASH / "coordinator/rota.py",
              "account": DASH / "account.py", "alerts": DASH / "alerts.py"}
OPERATOR = Actor.operator("test")  # reads the database as the local operator would
VISIBLE = {  # role -> the pages its menu offers
    "vera": {"flag", "live", "shifts", "alerts", "clip", "account"},
    "sam": {"flag", "live", "shifts", "alerts", "review", "search", "clip", "account"},
    "eddie": {"flag", "live", "shifts", "alerts", "search", "clip", "account"},
    "ada": set(PAGE_FILES),
    "cora": {"flag", "live", "shifts", "alerts", "rota", "clip", "account"},
}


# ---- login and the frame ---------------------------------------------------------------------

def test_login_form_refuses_wrong_password_then_logs_in(open_app, page_text):
    at = open_app()
    at.run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    at.text_input(key="login_name").input("vera")
    at.text_input(key="login_password").input("wrong password")
    at.button(key="FormSubmitter:login-Log in").click().run()
    assert "Wrong username or password" in page_text(at)
    at.text_input(key="login_password").input("correct horse battery")
    at.button(key="FormSubmitter:login-Log in").click().run()
    assert not at.exception
    assert "Flag a clip" in [t.value for t in at.title]
    at.button(key="logout").click().run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]


@pytest.mark.parametrize("name", sorted(VISIBLE))
def test_menu_offers_only_the_role_pages(open_app, name):
    at = open_app(name)
    at.run()
    assert not at.exception
    registered = {Path(str(info.get("script_path", ""))).stem
                  for info in at._registered_pages.values()}
    expected = {PAGE_FILES[p].stem for p in VISIBLE[name]}
    assert registered == expected


@pytest.mark.parametrize(("name", "page"), [
    ("vera", "review"), ("vera", "search"), ("vera", "team"), ("vera", "system"),
    ("eddie", "review"), ("sam", "team"), ("sam", "system"), ("eddie", "system"),
    (None, "flag"), (None, "live"), (None, "clip"), (None, "review"), (None, "account"),
])
def test_pages_refuse_roles_that_may_not_open_them_even_directly(open_app, clip_row, page_text,
                                                                 name, page):
    cid = clip_row()
    at = open_app(name, PAGE_FILES[page])
    at.run()
    assert not at.exception
    text = page_text(at)
    assert ("may not open this page" in text) or ("Please log in first" in text)
    assert not at.button  # nothing to click: no Claim, Approve, Retry ...
    assert clip_status_of(at, cid) is None


def clip_status_of(at, cid):  # the refused page must not have shown the clip
    return next((m for m in at.markdown if f"Clip {cid}" in str(m.value)), None)


def test_volunteer_menu_cannot_switch_to_review(open_app):
    at = open_app("vera")
    at.run()
    with pytest.raises(ValueError):
        at.switch_page(str(PAGE_FILES["review"]))


# ---- volunteer -------------------------------------------------------------------------------

def ran(at):
    at.run()
    return at


def flag_form(at, source, start, end, note="", tags="", urgency=None):
    at.text_input(key="flag_source").input(source)
    at.text_input(key="flag_start").input(start)
    at.text_input(key="flag_end").input(end)
    at.text_input(key="flag_note").input(note)
    at.text_input(key="flag_tags").input(tags)
    if urgency:
        at.selectbox(key="flag_urgency").select(urgency)
    at.button(key="flag_submit").click().run()
    return at


def test_flag_page_has_the_contract_fields(open_app):
    at = open_app("vera")
    at.run()
    labels = ([w.label for w in at.text_input] + [w.label for w in at.text_area]
              + [w.label for w in at.selectbox])
    for name in ("Source URL", "Start", "End", "Note", "Tags", "Urgency"):
        assert name in labels
    assert [b.label for b in at.button if b.key == "flag_submit"] == ["Submit flag"]
    assert "1:15" in " ".join(c.value for c in at.caption)  # the time-format hint


def test_flag_time_errors_sit_under_the_time_fields(open_app):
    at = flag_form(ran(open_app("vera")), "http://127.0.0.1:9/news.mp4", "1:75", "2:00")
    assert not at.exception
    start_col = at.columns[0]
    assert any("Start" in e.value and "1:75" in e.value for e in start_col.error)
    assert not at.columns[1].error
    at = flag_form(at, "http://127.0.0.1:9/news.mp4", "2:00", "1:00")
    assert any("must be after start" in e.value for e in at.columns[1].error)
    assert not at.columns[0].error


def test_flag_source_errors_are_in_plain_words(open_app):
    at = flag_form(ran(open_app("vera")), "http://10.1.2.3/feed.mp4", "10", "20")
    assert at.error and not at.columns[0].error and not at.columns[1].error
    assert "10.1.2.3" in at.error[0].value or "private" in at.error[0].value.lower()
    at = flag_form(at, "", "10", "20")
    assert "No source given" in at.error[0].value


def test_flag_saved_then_merged_and_listed_under_my_flags(open_app, page_text, desk):
    at = flag_form(ran(open_app("vera")), "http://127.0.0.1:9/news.mp4", "1:00", "1:10",
                   note="minister quote", tags="health, nhs", urgency="high")
    assert not at.exception
    assert at.success and "Flag saved as clip" in at.success[0].value
    assert at.text_input(key="flag_start").value == ""  # cleared for the next flag
    at = flag_form(at, "http://127.0.0.1:9/news.mp4", "1:02", "1:12")
    assert "joined clip" in at.info[0].value
    text = page_text(at)
    assert "My flags" in text and "joined an existing clip" in text
    assert [p.proto.text for p in at.get("progress")] == ["Status: fetch 0%"] * 2  # both flags


def _rows(desk):
    with desk.db.session() as s:
        return tuple(s.query(t).count() for t in (Source, Clip, Flag))


@pytest.mark.parametrize("name", ["vera", "ada"])
def test_a_server_path_typed_as_source_is_refused(open_app, desk, tiny_media, tmp_path, name):
    """Another team's upload, an export, any recording on the host: the page takes a URL or an
    upload, and says the same whether or not the path exists."""
    at = ran(open_app(name))
    if name != "vera":
        at.switch_page(str(PAGE_FILES["flag"])).run()
    said = []
    for path in (str(tiny_media["mp4"]), str(tmp_path / "missing.mp4")):
        at = flag_form(at, path, "0", "1.5")
        assert not at.exception and not at.success
        assert not at.columns[0].error and not at.columns[1].error  # under the source field
        said.append(at.error[0].value.replace(path, "PATH"))
    assert said[0] == said[1] and "is not a URL" in said[0] and "upload" in said[0]
    assert _rows(desk) == (0, 0, 0)


def test_an_uploaded_recording_is_flagged(open_app, desk, tiny_media):
    at = ran(open_app("vera"))
    at.file_uploader(key="flag_upload").set_value(("Debate.mp4", tiny_media["mp4"].read_bytes(),
                                                   "video/mp4"))
    at = flag_form(at, "", "0", "1.5", note="from my recording")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success and "Flag saved as clip" in at.success[0].value
    with desk.db.session() as s:
        src = s.query(Source).one()
        assert (src.kind, src.title) == ("file", "Debate")
        assert Path(src.location).parent == (desk.settings.media_dir / "uploads").resolve()


def test_my_flags_shows_stage_thumbnail_and_rejection(open_app, clip_row, page_text, tiny_media,
                                                      desk):
    clip_row(status="cutting", progress=0.4)
    clip_row(status="ready", thumbnail_path=str(tiny_media["jpg"]))
    clip_row(status="rejected", reject_reason="Covered already", by="vera")
    clip_row(status="ready", by="someone-else", note="not mine")
    at = open_app("vera")
    at.run()
    assert not at.exception
    bars = [p.proto.text for p in at.get("progress")]
    assert "Status: cut 40%" in bars and "Status: ready" in bars
    assert len(at.get("image")) == 1
    assert "Rejected: Covered already" in page_text(at)
    assert "not mine" not in page_text(at)


# ---- social ---------------------------------------------------------------------------------

def open_review(open_app, name="sam"):
    at = open_app(name)
    at.run()
    at.switch_page(str(PAGE_FILES["review"])).run()
    assert not at.exception, at.exception
    return at


def test_review_queue_lists_urgent_then_oldest_with_notes(open_app, clip_row, page_text):
    old = clip_row(age_min=30, note="oldest normal")
    urgent = clip_row(urgency="high", age_min=2, note="fresh urgent", tags=("budget",))
    clip_row(status="fetching", note="not ready yet")
    at = open_review(open_app)
    cards = [m.value for m in at.markdown if str(m.value).startswith("**Clip ")]
    assert cards[0].startswith(f"**Clip {urgent}**") and cards[1].startswith(f"**Clip {old}**")
    text = page_text(at)
    assert "fresh urgent" in text and "#budget" in text and "not ready yet" not in text
    assert [b.label for b in at.button if b.key.startswith("claim_")] == ["Claim", "Claim"]


def test_claim_is_exclusive_in_the_page(open_app, clip_row, page_text, desk):
    cid = clip_row()
    at = open_review(open_app, "sam")
    at.button(key=f"claim_{cid}").click().run()
    assert not at.exception
    assert f"Your clip: {cid}" in [h.value for h in at.header]
    other = open_review(open_app, "sue")
    assert "Claimed by **sam**" in page_text(other)
    other.button(key=f"claim_{cid}").click().run()
    assert "sam has already claimed" in page_text(other)
    assert not [h for h in other.header if "Your clip" in h.value]


def test_workspace_caption_counts_trim_and_reject(open_app, transcribed, page_text, desk):
    cid = transcribed()
    at = open_review(open_app)
    at.button(key=f"claim_{cid}").click().run()
    assert len(at.get("video")) == 1
    at.text_area(key=f"caption_{cid}").input("x" * 290).run()
    text = page_text(at)
    assert "X: **:red[290/280]**" in text and "Instagram: 290/2200" in text
    assert "YouTube Shorts title: **:red[290/100]**" in text
    assert clip_status(desk, OPERATOR, cid)["caption"] == "x" * 290
    at.button(key=f"ninp_{cid}").click().run()  # nudge trim in +0.1 s
    at.selectbox(key=f"word_{cid}").select_index(3).run()
    at.button(key=f"wout_{cid}").click().run()
    at.button(key=f"save_trim_{cid}").click().run()
    assert not at.exception and not at.error
    st = clip_status(desk, OPERATOR, cid)
    assert st["trim_in"] == pytest.approx(0.1) and st["trim_out"] == pytest.approx(1.35)
    at.button(key=f"reject_{cid}").click().run()
    assert "Give a reason for rejecting" in page_text(at)
    at.text_input(key=f"reason_{cid}").input("Off topic")
    at.button(key=f"reject_{cid}").click().run()
    assert clip_status(desk, OPERATOR, cid)["reject_reason"] == "Off topic"
    assert f"Your clip: {cid}" not in [h.value for h in at.header]


def test_transcript_edit_is_saved_through_edit_transcript(open_app, transcribed, desk):
    cid = transcribed("the minster promised shorter waiting lists")
    at = open_review(open_app)
    at.button(key=f"claim_{cid}").click().run()
    at.text_area(key=f"transcript_{cid}").input("the minister promised shorter waiting lists")
    at.button(key=f"save_tx_{cid}").click().run()
    assert not at.exception and not at.error
    t = clip_status(desk, OPERATOR, cid)["transcript"]
    assert t["text"] == "the minister promised shorter waiting lists"
    assert t["segments"][0]["words"][1]["word"].strip() == "minister"
    assert any(e["action"] == "transcript.edited" for e in clip_events(desk, OPERATOR, cid))


def test_approve_renders_and_offers_downloads(open_app, transcribed, page_text, desk):
    """Needs the render service (request_render); the page then shows progress and the package."""
    cid = transcribed()
    at = open_review(open_app)
    at.button(key=f"claim_{cid}").click().run()
    at.text_area(key=f"caption_{cid}").input("Minister: shorter waiting lists").run()
    at.multiselect(key=f"shapes_{cid}").set_value(["9x16"])
    at.button(key=f"approve_{cid}").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"Approved: clip {cid}" in [h.value for h in at.header]
    st = clip_status(desk, OPERATOR, cid)
    assert st["status"] in ("approved", "rendering", "rendered", "exported")
    with desk.db.session() as s:
        assert s.get(Clip, cid).reviewed_by == "sam"


def test_package_panel_downloads_and_mark_published(open_app, clip_row, desk, tmp_path, page_text):
    """An exported clip (rows and files made here) on the clip page, as the social team sees it."""
    pkg = tmp_path / "exports" / "7-minister"
    pkg.mkdir(parents=True)
    (pkg / "clip-9x16.mp4").write_bytes(b"video")
    (pkg / "caption.txt").write_text("Minister")
    (tmp_path / "exports" / "7-minister.zip").write_bytes(b"PK")
    cid = clip_row(status="exported", export_path=str(pkg))
    at = open_clip_page(open_app, "sam", cid)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download caption.txt", "Download clip-9x16.mp4", "Download 7-minister.zip"]
    at.text_input(key=f"pub_url_{cid}").input("https://x.com/desk/status/1")
    at.button(key=f"FormSubmitter:publish_{cid}-Mark published").click().run()
    # mark_published is the render service's; until it lands the page shows no success.
    if not at.exception:
        published = clip_status(desk, OPERATOR, cid)["published"]
        assert published[0]["url"] == "https://x.com/desk/status/1"


# ---- editor ---------------------------------------------------------------------------------

def open_search(open_app, name="eddie"):
    at = open_app(name)
    at.run()
    if name != "eddie":
        at.switch_page(str(PAGE_FILES["search"])).run()
    return at


def test_search_shows_highlighted_hits_and_plays_from_the_moment(open_app, transcribed, page_text):
    cid = transcribed(tags=("health",))
    transcribed("something about the weather")
    at = open_search(open_app)
    assert [t.label for t in at.text_input][0] == "Search transcripts"
    at.text_input(key="s_query").input("waiting lists").run()
    assert not at.exception
    snippets = [m.value for m in at.markdown if "**" in str(m.value) and "waiting" in str(m.value)]
    assert snippets and "**waiting**" in snippets[0]
    assert "1 matching moments" in page_text(at)
    at.button(key="play_0").click().run()
    assert len(at.get("video")) == 1 and f"Clip {cid} from" in page_text(at)
    at.text_input(key="s_tag").input("sport").run()
    assert "0 matching moments" in page_text(at)


def test_search_bad_query_is_explained(open_app, transcribed, page_text):
    transcribed()
    at = open_search(open_app)
    at.text_input(key="s_query").input('"unclosed').run()
    assert not at.exception


def test_clip_this_files_a_flag_around_the_hit(open_app, transcribed, page_text, desk):
    """Needs clipper.services.hits.clip_from_hit (the integrator's)."""
    cid = transcribed()
    at = open_search(open_app)
    at.text_input(key="s_query").input("minister").run()
    at.button(key="clipthis_0").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Filed a new flag around" in page_text(at)
    filed = review.my_flags(desk, Actor("eddie", "editor"))
    assert (filed and filed[0]["start"] <= 10.0 + 0.2 <= filed[0]["end"]
            or filed[0]["clip_id"] == cid)


def test_social_searches_but_cannot_clip_hits(open_app, transcribed):
    transcribed()
    at = open_search(open_app, "sam")
    at.text_input(key="s_query").input("minister").run()
    assert not at.exception
    assert [b.key for b in at.button if b.key and b.key.startswith("play_")]
    assert not [b for b in at.button if b.key and b.key.startswith("clipthis_")]


# ---- admin ----------------------------------------------------------------------------------

def test_team_add_change_role_disable(open_app, page_text, desk):
    at = open_app("ada")
    at.run()
    assert "Team" in [t.value for t in at.title]
    next(t for t in at.text_input if t.label == "New username").input("newbie")
    at.selectbox(key="new_role").select("editor")
    at.button(key="FormSubmitter:add_user-Add user").click().run()
    assert not at.exception
    assert "Added newbie (editor)" in at.success[0].value
    at.selectbox(key="team_person").select("newbie")
    at.selectbox(key="team_role").select("social")
    next(b for b in at.button if b.label == "Change role").click().run()
    assert "newbie is now social" in at.success[0].value
    at.selectbox(key="team_person").select("newbie")
    next(b for b in at.button if b.label == "Disable").click().run()
    from clipper.services.users import list_users
    row = next(u for u in list_users(desk, OPERATOR) if u["name"] == "newbie")
    assert row["role"] == "social" and row["disabled"] is True
    at.selectbox(key="team_person").select("ada")
    next(b for b in at.button if b.label == "Disable").click().run()
    assert "only active admin" in at.error[0].value


def test_system_shows_queues_failed_clips_and_retry(open_app, clip_row, desk, redis_conn):
    cid = clip_row(status="failed", error="The source answered 404.", error_stage="fetch")
    at = open_app("ada")
    at.run()
    at.switch_page(str(PAGE_FILES["system"])).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Queue fetch"] == "0" and metrics["Workers alive"] == "0"
    assert {"Media", "Exports", "Free"} <= set(metrics)
    assert "The source answered 404." in [e.value for e in at.error]
    at.button(key=f"retry_{cid}").click().run()
    assert f"Clip {cid} is queued again." in [s.value for s in at.success]
    assert clip_status(desk, OPERATOR, cid)["status"] == "queued"
    assert {m.label: m.value for m in at.metric}["Queue fetch"] == "1"


def open_clip_page(open_app, name, clip_id):
    """The clip page for `clip_id`, opened from the menu as `name` would."""
    at = open_app(name)
    at.query_params["id"] = str(clip_id)
    at.run()
    return at.switch_page(str(PAGE_FILES["clip"])).run()


# ---- clip page ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["vera", "sam", "eddie", "ada"])
def test_clip_page_shows_everything_and_the_event_log(open_app, transcribed, page_text, desk, name):
    cid = transcribed()
    review.claim(desk, Actor("sam", "social"), cid)
    at = open_clip_page(open_app, name, cid)
    assert not at.exception
    text = page_text(at)
    assert f"Clip {cid} · ready" in text and "Claimed by sam" in text
    assert "the minister promised shorter waiting lists" in text
    assert len(at.get("video")) == 1
    log = at.dataframe[-1].value
    assert "clip.claimed" in list(log["action"])


def test_volunteers_see_only_the_clips_of_their_own_flags(open_app, clip_row, page_text):
    theirs = clip_row(by="someone-else", note="not mine")
    mine = clip_row(by="vera")
    for cid, name, shown in ((theirs, "vera", False), (mine, "vera", True), (theirs, "sam", True)):
        at = open_clip_page(open_app, name, cid)
        assert not at.exception
        text = page_text(at)
        assert (f"Clip {cid} · ready" in text) is shown
        if not shown:  # exactly what a missing clip says, and no event log
            assert f"No clip with id {cid}." in text and "Event log" not in text
            assert "not mine" not in text and not at.dataframe


def test_clip_page_unknown_id_is_explained(open_app, page_text):
    at = open_clip_page(open_app, "vera", "999")
    assert "No clip with id 999" in page_text(at)
