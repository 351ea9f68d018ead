"""The rota in real Chromium against `clipper up`: shifts made, taken on a phone, gaps seen.

An admin adds a coordinator and two volunteers on the Team page; the coordinator creates three
evenings of shifts (from tomorrow) on three channels on the Rota page; the volunteers sign
up for tomorrow's on a phone (My shifts); the coordinator's gaps and week grid then show exactly
what was left open.
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
from clipper.services.rota import list_shifts
from clipper.settings import Settings
from tests.dashboard import test_browser as journeys
from tests.dashboard.test_browser import SHOTS, Stack, login

pytestmark = [pytest.mark.browser, pytest.mark.services]

# test_browser's fixtures, used here by name: `clipper up` in a subprocess (module scope, so this
# module gets a stack and a home of its own) and Chromium.
stack = journeys.stack
browser = journeys.browser

#: channel -> people each of its shifts needs; tomorrow `val` takes rota-a's, `wes` one place of
#: two on rota-b's, nobody rota-c's.
SHIFTS = {"rota-a": 1, "rota-b": 2, "rota-c": 1}
#: Days of shifts the coordinator creates, from tomorrow: each shift is a form submission and
#: a page rerun (~1.3 s), and three days show all the grid and the gaps tell apart.
DAYS = 3
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


def create_shifts(page, first: datetime) -> None:
    """On the Rota page: shifts 19:00-21:00 on each of DAYS days from `first`, per
    channel of SHIFTS (the form keeps the days and times between shifts)."""
    form = page.get_by_test_id("stForm").filter(
        has=page.get_by_role("button", name="Create shifts"))
    for k in range(DAYS):
        day = first + timedelta(days=k)
        for label in ("Start", "End"):
            for part, value in (("year", f"{day.year}"), ("month", f"{day.month:02d}"),
                                ("day", f"{day.day:02d}")):
                form.get_by_role("spinbutton", name=f"{part}, {label}", exact=True).click()
                page.keyboard.type(value)
        for channel, needs in SHIFTS.items():
            choose(page, form.get_by_role("combobox", name="Channel", exact=True), channel)
            needs_box = form.get_by_role("spinbutton", name="Needs", exact=True)
            if needs_box.input_value() != str(needs):
                needs_box.fill(str(needs))
                poll(lambda box=needs_box, n=needs: box.input_value() == str(n), 10,
                     f"needs {needs}")
            form.get_by_role("button", name="Create shifts").click()
            # The words differ from the last shift's (another channel), so this waits for it.
            page.get_by_text(f"Created 1 shift on {channel}.").wait_for()
            idle(page)


def idle(page) -> None:
    """Wait for the page's script run to end. While it runs, the message it put on top shifts
    the form down one place and the old form stays until the new one replaces it: two forms,
    two Channel boxes, for a moment."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


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


def stored(stack: Stack) -> list[tuple[str, str]]:
    """`(channel, start)` of every shift in the stack's database, read through the services."""
    ctx = Context.build(Settings.from_env(stack.env))
    try:
        return [(s["channel"], s["start"])
                for s in list_shifts(ctx, Actor.operator("test"), days=DAYS + 2)]
    finally:
        ctx.close()


def shift_rows(page) -> list[str]:
    """The Rota page's upcoming shifts, one text per row, from their accessible table (which
    holds only the rows in view: the first ten or so)."""
    table = page.get_by_test_id("stDataFrame").filter(
        has=page.locator("table th", has_text=re.compile("^Volunteers$")))
    return [" | ".join(r.locator("td").all_inner_texts())
            for r in table.locator("table tbody tr").all()]


def sign_up(stack: Stack, browser, name: str, password: str, channel: str,
            day: datetime) -> None:
    """`name`, on a phone, signs up for `day`'s open shift on `channel` on My shifts."""
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
            .filter(has=page.get_by_text(re.compile(rf"^{channel} · {day:%a %d %b} 19:00")))
            .filter(has=page.get_by_role("button", name="Sign up")).last)
    card.get_by_role("button", name="Sign up").click()
    page.get_by_text(f"Signed up for {channel}").wait_for()
    # Now under Upcoming, with its Cancel button.
    page.get_by_role("button", name="Cancel", exact=True).wait_for()
    page.screenshot(path=str(SHOTS / f"rota-shifts-{name}.png"), full_page=True)
    page.close()


def grid_slot(page, day: datetime, slot: str = "18:00") -> dict[str, str]:
    """The week grid's cells for `day` in the 3-hour column `slot` (18:00 holds the 19:00-21:00
    shifts): channel -> cell, read from the grid's accessible table (the cells themselves are
    drawn on a canvas, and only the rows and columns in view are in it); empty while the grid
    is still being drawn."""
    grid = page.get_by_test_id("stDataFrame").first
    heads = grid.locator("table th").all_inner_texts()
    if heads[:2] != ["Day", "Channel"] or slot not in heads:
        return {}
    col = heads.index(slot)
    rows = [r.locator("td").all_inner_texts() for r in grid.locator("table tbody tr").all()]
    return {cells[1]: cells[col] for cells in rows
            if len(cells) > col and cells[0] == f"{day:%a %d}"}


def gap_lines(page) -> list[str]:
    return [t for t in page.get_by_test_id("stMarkdownContainer").all_inner_texts()
            if t.startswith("🔴")]


def test_rota_journey(stack: Stack, browser, channels: None) -> None:
    people = add_people(stack, browser, {"cora": "coordinator", "val": "volunteer",
                                         "wes": "volunteer"})
    tomorrow = datetime.now(UTC) + timedelta(days=1)  # CLIPPER_TIMEZONE is UTC here
    later = tomorrow + timedelta(days=1)  # a day of the week nobody signs up for

    coord = browser.new_page(viewport={"width": 1280, "height": 900})
    login(coord, stack.url, "cora", people["cora"])
    coord.get_by_role("heading", name="Rota", exact=True).wait_for()  # a coordinator's home
    create_shifts(coord, tomorrow)
    assert sorted(stored(stack)) == sorted(
        (c, f"{tomorrow + timedelta(days=k):%Y-%m-%d}T19:00:00Z")
        for k in range(DAYS) for c in SHIFTS)
    for day in (tomorrow, later):
        poll(lambda d=day: grid_slot(coord, d) == {c: "🔴 empty" for c in SHIFTS}, 20,
             f"three empty shifts in the grid on {day:%a %d}")
    assert set(grid_slot(coord, tomorrow, "15:00").values()) == {"⚪ —"}  # nothing planned

    sign_up(stack, browser, "val", people["val"], "rota-a", tomorrow)
    sign_up(stack, browser, "wes", people["wes"], "rota-b", tomorrow)

    # Widening the gaps to 7 days reruns the page: tomorrow's shifts are in it either way.
    coord.get_by_text("next 7 days", exact=True).click()
    expected = {"rota-a": "🟢 covered", "rota-b": "🟡 short", "rota-c": "🔴 empty"}
    poll(lambda: grid_slot(coord, tomorrow) == expected, 20, f"the grid to show {expected}")
    assert grid_slot(coord, later) == {c: "🔴 empty" for c in SHIFTS}
    # The gaps agree: tomorrow rota-b and rota-c are one short, rota-a is not; the day after,
    # all three are.
    on = {day: f"{day:%a %d %b} 19:00" for day in (tomorrow, later)}
    lines = poll(lambda: (got := [g for g in gap_lines(coord) if on[tomorrow] in g])
                 and len(got) == 2 and got, 20, "two gaps tomorrow")
    assert [line.split()[1] for line in lines] == ["rota-b", "rota-c"]
    assert all(line.endswith("· 1 missing") for line in lines)
    assert sorted(g.split()[1] for g in gap_lines(coord) if on[later] in g) == sorted(SHIFTS)
    # The shift table says who is on which.
    rows = [r for r in shift_rows(coord) if on[tomorrow] in r]
    assert [r.split(" | ")[1:4] for r in rows] == [
        ["rota-a", f"{on[tomorrow]}–21:00", "val"], ["rota-b", f"{on[tomorrow]}–21:00", "wes"],
        ["rota-c", f"{on[tomorrow]}–21:00", "—"]]
    coord.get_by_role("heading", name="This week").scroll_into_view_if_needed()
    coord.screenshot(path=str(SHOTS / "rota-coordinator.png"), full_page=True)
    coord.close()
