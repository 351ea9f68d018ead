"""The rota in real Chromium against `clipper up`: shifts made, taken on a phone, gaps seen.

An admin adds a coordinator and two volunteers on the Team page; the coordinator creates
tomorrow's shifts on three channels on the Rota page; the volunteers sign up on a phone (My
shifts); the coordinator's gaps and week grid then show exactly what was left open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from polling import poll

from clipper.context import Context
from clipper.permissions import Actor
from clipper.services.channels import add_channel, pause_channel
from clipper.settings import Settings
from tests.dashboard import test_browser as journeys
from tests.dashboard.test_browser import SHOTS, Stack, login

pytestmark = [pytest.mark.browser, pytest.mark.services]

# test_browser's fixtures, used here by name: `clipper up` in a subprocess (module scope, so this
# module gets a stack and a home of its own) and Chromium.
stack = journeys.stack
browser = journeys.browser

#: channel -> people it needs; `val` takes the first, `wes` one of two on the second, nobody the
#: third.
SHIFTS = {"rota-a": 1, "rota-b": 2, "rota-c": 1}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def channels(stack: Stack) -> Iterator[None]:
    """The three channels, added through the services on the stack's own database and paused at
    once: the rota needs them to exist, not to record (nothing serves their URL)."""
    ctx = Context.build(Settings.from_env(stack.env))
    op = Actor.operator("test")
    try:
        for name in SHIFTS:
            add_channel(ctx, op, name, f"http://127.0.0.1:9/{name}.m3u8")
            pause_channel(ctx, op, name)
        yield
    finally:
        ctx.close()


def add_people(stack: Stack, browser, people: dict[str, str]) -> dict[str, str]:
    """The admin adds `people` (name -> role) on the Team page; returns name -> password."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    login(page, stack.url, "admin", stack.admin)  # type: ignore[attr-defined]
    page.get_by_role("heading", name="Team").wait_for()
    passwords = {}
    for name, role in people.items():
        page.get_by_role("textbox", name="New username", exact=True).fill(name)
        page.get_by_role("combobox", name=re.compile("^Role")).first.click()
        page.get_by_role("option", name=role, exact=True).click()
        page.get_by_role("button", name="Add user").click()
        page.get_by_text(f"Added {name} ({role})").wait_for()
        passwords[name] = (page.locator("code").filter(has_text=re.compile(r"^\S{12,}$"))
                           .last.inner_text())
    page.close()
    return passwords


def create_shifts(page, day: datetime) -> None:
    """On the Rota page: one 19:00-21:00 shift on `day` per channel of SHIFTS."""
    form = page.get_by_test_id("stForm").filter(
        has=page.get_by_role("button", name="Create shifts"))
    for label in ("Start", "End"):  # the form keeps them between shifts
        for part, value in (("year", f"{day.year}"), ("month", f"{day.month:02d}"),
                            ("day", f"{day.day:02d}")):
            form.get_by_role("spinbutton", name=f"{part}, {label}", exact=True).click()
            page.keyboard.type(value)
    for channel, needs in SHIFTS.items():
        choose(page, form.get_by_role("combobox", name="Channel", exact=True), channel)
        needs_box = form.get_by_role("spinbutton", name="Needs", exact=True)
        needs_box.fill(str(needs))
        poll(lambda box=needs_box, n=needs: box.input_value() == str(n), 10, f"needs {needs}")
        form.get_by_role("button", name="Create shifts").click()
        page.get_by_text(f"Created 1 shift on {channel}.").wait_for()


def choose(page, combo, option: str) -> None:
    """Pick `option` in a select box. The page may still be redrawing after the last rerun,
    which can swallow a click that opens the list: open and pick until it shows the choice."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    def picked() -> bool:
        if combo.input_value() == option:
            return True
        try:
            if combo.get_attribute("aria-expanded") != "true":
                combo.click(timeout=2_000)
            item = page.get_by_role("option", name=option, exact=True)
            if item.count():
                item.click(timeout=2_000)
        except PlaywrightTimeout:  # redrawn under us: the next round tries again
            pass
        return combo.input_value() == option

    poll(picked, 20, f"{option!r} chosen", every=0.3)


def sign_up(stack: Stack, browser, name: str, password: str, channel: str) -> None:
    """`name`, on a phone, signs up for the open shift on `channel` on My shifts."""
    page = browser.new_page(viewport=PHONE)
    login(page, stack.url, name, password)
    page.get_by_role("button", name="Expand sidebar").click()  # the menu folds away on a phone
    page.get_by_role("link", name="My shifts", exact=True).click()
    page.get_by_role("heading", name="My shifts", exact=True).wait_for()
    collapse = page.get_by_role("button", name="Collapse sidebar")
    if collapse.is_visible():
        collapse.click()
    page.get_by_role("heading", name="Open shifts", exact=True).wait_for()
    card = (page.get_by_test_id("stVerticalBlock")
            .filter(has=page.get_by_text(re.compile(rf"^{channel} · ")))
            .filter(has=page.get_by_role("button", name="Sign up")).last)
    card.get_by_role("button", name="Sign up").click()
    page.get_by_text(f"Signed up for {channel}").wait_for()
    # Now under Upcoming, with its Cancel button.
    page.get_by_role("button", name="Cancel", exact=True).wait_for()
    page.screenshot(path=str(SHOTS / f"rota-shifts-{name}.png"), full_page=True)
    page.close()


def grid_day(page, day: datetime) -> dict[str, str]:
    """The week grid's column for `day`: channel -> cell, read from the grid's accessible table
    (the cells themselves are drawn on a canvas); empty while the grid is still being drawn."""
    grid = page.get_by_test_id("stDataFrame").first
    heads = grid.locator("table th").all_inner_texts()
    if f"{day:%a %d}" not in heads:
        return {}
    col = heads.index(f"{day:%a %d}")
    rows = [r.locator("td").all_inner_texts() for r in grid.locator("table tbody tr").all()]
    return {cells[0]: cells[col] for cells in rows if len(cells) > col}


def gap_lines(page) -> list[str]:
    return [t for t in page.get_by_test_id("stMarkdownContainer").all_inner_texts()
            if t.startswith("🔴")]


def test_rota_journey(stack: Stack, browser, channels: None) -> None:
    people = add_people(stack, browser, {"cora": "coordinator", "val": "volunteer",
                                         "wes": "volunteer"})
    tomorrow = datetime.now(UTC) + timedelta(days=1)  # CLIPPER_TIMEZONE is UTC here

    coord = browser.new_page(viewport={"width": 1100, "height": 900})
    login(coord, stack.url, "cora", people["cora"])
    coord.get_by_role("heading", name="Rota", exact=True).wait_for()  # a coordinator's home
    create_shifts(coord, tomorrow)
    poll(lambda: grid_day(coord, tomorrow) == {c: "🔴 empty" for c in SHIFTS}, 20,
         "three empty shifts in the grid")

    sign_up(stack, browser, "val", people["val"], "rota-a")
    sign_up(stack, browser, "wes", people["wes"], "rota-b")

    # Widening the gaps to 7 days reruns the page: tomorrow's shifts are in it either way.
    coord.get_by_text("next 7 days", exact=True).click()
    expected = {"rota-a": "🟢 covered", "rota-b": "🟡 short", "rota-c": "🔴 empty"}
    poll(lambda: grid_day(coord, tomorrow) == expected, 20, f"the grid to show {expected}")
    lines = poll(lambda: (got := gap_lines(coord)) and len(got) == 2 and got, 20,
                 "two gaps")
    assert [line.split()[1] for line in lines] == ["rota-b", "rota-c"]
    assert all(line.endswith("· 1 missing") and "19:00" in line for line in lines)
    assert not any("rota-a" in line for line in lines)  # covered: no gap
    coord.get_by_role("heading", name="This week").scroll_into_view_if_needed()
    coord.screenshot(path=str(SHOTS / "rota-coordinator.png"), full_page=True)
    coord.close()
