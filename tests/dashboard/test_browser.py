"""End to end in real Chromium against `clipper up` (embedded Redis, one worker, the dashboard).

Journeys: a volunteer flags a moment of a loopback-served broadcast and sees it become ready; the
social team claims, captions, approves and downloads the package; an editor finds a phrase and
clips the hit; an admin adds a loopback live channel and a volunteer, on a phone, clips its last
30 seconds. Each page is screenshotted (into docs/screenshots/ with CLIPPER_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import poll

pytestmark = [pytest.mark.browser, pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
# Screenshots refresh docs/screenshots only when asked (CLIPPER_SCREENSHOTS=1), so a test run
# leaves the working tree clean.
SHOTS = (ROOT / "docs" / "screenshots" if os.environ.get("CLIPPER_SCREENSHOTS")
         else Path(tempfile.mkdtemp(prefix="clipper-shots-")))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SPEECH = ("Good evening. The minister promised shorter waiting lists for every hospital. "
          "Critics said the money is not there.")
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


class Stack:
    """`python -m clipper.cli up` in a subprocess; its stdout is collected for the admin
    password."""

    def __init__(self, home: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("REDIS_URL", "DATABASE_URL") and not k.startswith("CLIPPER_")}
        env.update(CLIPPER_HOME=str(home), CLIPPER_URL_ALLOWLIST="127.0.0.1", HF_HUB_OFFLINE="1",
                   CLIPPER_API_PORT=str(free_port()),
                   CLIPPER_WHISPER_BEAM_SIZE="1", CLIPPER_PAD_SECONDS="1")
        self.env, self.url, self.lines = env, f"http://127.0.0.1:{port}", []
        self.proc = subprocess.Popen([sys.executable, "-m", "clipper.cli", "up", "--workers", "1",
                                      "--port", str(port)], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line)

    def admin_password(self) -> str:
        found: list[str] = []

        def seen() -> bool:
            found.extend(m.group(1) for line in self.lines
                         if (m := re.search(r"First admin account: admin\s+password: (\S+)", line)))
            return bool(found)
        poll(seen, 60, "the first admin password")
        return found[0]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="module")
def broadcast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 14 s 320x180 news-like MP4 with espeak-ng speech, served over loopback HTTP."""
    from testmedia.mediagen import make_video, serve_dir

    folder = tmp_path_factory.mktemp("broadcast")
    make_video(folder / "news.mp4", 14, speech=SPEECH, gop=25)
    with serve_dir(folder) as (base, _requested):
        yield f"{base}/news.mp4"


@pytest.fixture(scope="module")
def live_channel() -> Iterator[str]:
    """A live HLS channel with program-date-time (2 s segments), served over loopback."""
    from testmedia.live import LiveServer, make_live_media

    with LiveServer(make_live_media()) as server:
        server.add("desk-news")
        yield server.url("desk-news")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    home = tmp_path_factory.mktemp("stack") / "home"
    st = Stack(home, free_port())
    try:
        poll(lambda: healthy(st.url) or st.proc.poll() is not None, 90, "the dashboard")
        assert st.proc.poll() is None, "".join(st.lines)
        st.admin = st.admin_password()  # type: ignore[attr-defined]
        yield st
    finally:
        st.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def team(stack: Stack, browser) -> dict[str, str]:
    """The admin adds the team through the Team page; returns name -> password."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    login(page, stack.url, "admin", stack.admin)
    page.get_by_role("heading", name="Team").wait_for()
    passwords = {}
    for name, role in (("vera", "volunteer"), ("sam", "social"), ("eddie", "editor")):
        page.get_by_role("textbox", name="New username", exact=True).fill(name)
        page.get_by_role("combobox", name=re.compile("^Role")).first.click()
        page.get_by_role("option", name=role, exact=True).click()
        page.get_by_role("button", name="Add user").click()
        msg = page.get_by_text(f"Added {name} ({role})")
        msg.wait_for()
        passwords[name] = (page.locator("code").filter(has_text=re.compile(r"^\S{12,}$"))
                           .last.inner_text())
    page.get_by_text("eddie").first.wait_for()
    page.screenshot(path=str(SHOTS / "admin-team.png"))
    page.get_by_role("link", name="System").click()
    page.get_by_text("Workers alive").wait_for()
    page.screenshot(path=str(SHOTS / "admin-system.png"))
    page.close()
    return passwords


def login(page, url: str, name: str, password: str) -> None:
    page.goto(url)
    page.get_by_role("textbox", name="Username", exact=True).fill(name)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log out").wait_for()


def test_wrong_password_is_refused(stack: Stack, browser) -> None:
    page = browser.new_page()
    page.goto(stack.url)
    page.get_by_role("textbox", name="Username", exact=True).fill("admin")
    page.get_by_role("textbox", name="Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Wrong username or password").wait_for()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "login.png"))
    page.close()


def test_users_get_no_developer_toolbar(stack: Stack, browser) -> None:
    """`clipper up` serves the dashboard for users: no Deploy button, no Rerun or Clear cache in
    the menu (a plain `streamlit run` on localhost shows all three)."""
    page = browser.new_page()
    login(page, stack.url, "admin", stack.admin)  # type: ignore[attr-defined]
    assert page.get_by_role("button", name="Deploy").count() == 0
    page.get_by_test_id("stMainMenu").click()
    menu = page.get_by_test_id("stMainMenuList")
    menu.wait_for()
    assert "Print" in menu.inner_text()
    assert "Rerun" not in menu.inner_text() and "Clear cache" not in menu.inner_text()
    page.close()


def test_journeys_flag_review_search(stack: Stack, browser, team: dict[str, str], broadcast: str,
                                     tmp_path: Path) -> None:
    clip_id = volunteer_flags(stack, browser, team["vera"], broadcast)
    social_approves(stack, browser, team["sam"], clip_id, tmp_path)
    editor_searches(stack, browser, team["eddie"])


def volunteer_flags(stack: Stack, browser, password: str, url: str) -> int:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # phone width
    login(page, stack.url, "vera", password)
    page.get_by_role("textbox", name="Source URL", exact=True).fill(url)
    page.get_by_role("textbox", name="Start", exact=True).fill("1.5")
    page.get_by_role("textbox", name="End", exact=True).fill("0:07.5")
    page.get_by_role("textbox", name="Note", exact=True).fill("Minister on waiting lists")
    page.get_by_role("textbox", name="Tags", exact=True).fill("health")
    page.get_by_role("button", name="Submit flag").click()
    saved = page.get_by_text(re.compile(r"Flag saved as clip \d+"))
    saved.wait_for()
    clip_id = int(re.search(r"clip (\d+)", saved.inner_text()).group(1))
    page.get_by_text("Status: ready").wait_for(timeout=150_000)
    page.locator("img").first.wait_for()
    page.screenshot(path=str(SHOTS / "volunteer-flag.png"), full_page=True)
    page.get_by_role("link", name=f"Open clip {clip_id}").click()
    page.get_by_text("Event log").wait_for()
    page.screenshot(path=str(SHOTS / "clip.png"))
    page.close()
    return clip_id


def social_approves(stack: Stack, browser, password: str, clip_id: int, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    login(page, stack.url, "sam", password)
    page.get_by_role("heading", name="Review queue").wait_for()
    page.get_by_role("button", name="Claim").first.click()
    page.get_by_role("heading", name=f"Your clip: {clip_id}").wait_for()
    caption = page.get_by_role("textbox", name="Post caption", exact=True)
    caption.fill("The minister promises shorter waiting lists. #health")
    caption.blur()
    page.get_by_text(re.compile(r"X: 52/280")).wait_for()
    shapes = page.get_by_role("combobox", name=re.compile("Shapes"))
    shapes.click()
    for _ in range(2):  # keep 16x9 only: quicker renders
        shapes.press("Backspace")
    page.keyboard.press("Escape")
    page.get_by_role("heading", name=f"Your clip: {clip_id}").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "social-review.png"), full_page=True)
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("heading", name=f"Approved: clip {clip_id}").wait_for()
    zip_button = page.get_by_role("button", name=re.compile(r"Download .*\.zip"))
    zip_button.wait_for(timeout=150_000)
    with page.expect_download() as download:
        zip_button.click()
    path = tmp_path / "package.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    assert any(n.endswith(".mp4") for n in names), names
    page.screenshot(path=str(SHOTS / "social-package.png"), full_page=True)
    page.close()


def editor_searches(stack: Stack, browser, password: str) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    login(page, stack.url, "eddie", password)
    box = page.get_by_role("textbox", name="Search transcripts", exact=True)
    box.fill("waiting lists")
    box.press("Enter")
    page.locator("strong", has_text=re.compile("waiting", re.I)).first.wait_for()
    page.get_by_role("button", name="Play").first.click()
    page.locator("video").first.wait_for()
    page.get_by_role("button", name="Clip this").first.click()
    page.get_by_text("Filed a new flag around").wait_for()
    page.screenshot(path=str(SHOTS / "editor-search.png"), full_page=True)
    page.close()


def test_journey_live_channel(stack: Stack, browser, team: dict[str, str],
                              live_channel: str) -> None:
    admin = admin_adds_channel(stack, browser, live_channel)
    volunteer_clips_live(stack, browser, team["vera"])
    # Back on the System page, the channel shows what it recorded.
    admin.get_by_role("link", name="System", exact=True).click()
    admin.get_by_text(re.compile(r"^Lag \d+ s · \d+ gaps?, \d+ s missing")).wait_for()
    admin.get_by_role("heading", name="Channels", exact=True).scroll_into_view_if_needed()
    admin.screenshot(path=str(SHOTS / "admin-channels.png"))
    admin.close()


def admin_adds_channel(stack: Stack, browser, url: str):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    login(page, stack.url, "admin", stack.admin)  # type: ignore[attr-defined]
    page.get_by_role("link", name="System", exact=True).click()
    page.get_by_role("heading", name="Channels", exact=True).wait_for()
    page.get_by_role("textbox", name="Channel name", exact=True).fill("desk-news")
    page.get_by_role("textbox", name="Stream URL", exact=True).fill(url)
    page.get_by_role("textbox", name="Retention hours", exact=True).fill("2")
    page.get_by_role("button", name="Add channel", exact=True).click()
    page.get_by_text("Added desk-news").wait_for()
    page.get_by_role("button", name="Pause", exact=True).wait_for()
    return page


def volunteer_clips_live(stack: Stack, browser, password: str) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})  # phone width
    login(page, stack.url, "vera", password)
    page.get_by_role("button", name="Expand sidebar").click()  # the menu folds away on a phone
    page.get_by_role("link", name="Live", exact=True).click()
    page.get_by_role("heading", name="Live", exact=True).wait_for()
    collapse = page.get_by_role("button", name="Collapse sidebar")
    if collapse.is_visible():
        collapse.click()
    # The recorder has stored something: the status line says how far behind live it is.
    page.get_by_text(re.compile(r"Recording.*\d+ s behind live")).wait_for(timeout=60_000)
    page.get_by_role("button", name="Refresh video", exact=True).click()
    page.locator("video").first.wait_for(timeout=30_000)
    page.get_by_role("textbox", name="Note", exact=True).fill("Presenter on the budget")
    page.get_by_role("button", name="Clip last 30 s", exact=True).click()
    saved = page.get_by_text(re.compile(r"Flag saved as clip \d+"))
    saved.wait_for()
    clip_id = int(re.search(r"clip (\d+)", saved.inner_text()).group(1))
    page.get_by_role("heading", name="My live flags").wait_for()
    page.get_by_text(re.compile(r"^Status: ")).first.wait_for()
    page.get_by_text("Status: ready").wait_for(timeout=150_000)
    page.get_by_role("link", name=f"Open clip {clip_id}").wait_for()
    # The whole page at phone width (the page scrolls inside its own container, so a tall
    # viewport rather than full_page).
    page.set_viewport_size({"width": 390, "height": 1900})
    page.get_by_role("heading", name="Live", exact=True).scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "volunteer-live.png"))
    page.close()
