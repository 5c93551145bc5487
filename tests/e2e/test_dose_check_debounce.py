"""In a real browser: the order form's live dose check asks the server once per pause in typing,
never once per key. static/js/order_form.js starts the check DEBOUNCE_MS after the last key; a
change of the schedule clears the quantity, and the answer fills it in (the answer holds for that
quantity too: tests/orders/test_dose_check.py), with no second request.

The page runs on Playwright's clock, so that time moves only when the test says: the keys go in
DEBOUNCE_MS - 1 apart and no check starts; DEBOUNCE_MS after the last key exactly one does.
Nothing depends on how fast the machine types."""

import datetime
import time

import pytest
from playwright.sync_api import Page, Request, expect

from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

DEBOUNCE_MS = 300  # order_form.js: later()
CHECK_PATH = "/orders/dose-check/"
# Real time for a request the page would have started to reach this process's listener.
NETWORK_GRACE_MS = 200


def is_check(request: Request) -> bool:
    return request.method == "POST" and request.url.endswith(CHECK_PATH)


class Checks:
    """The dose check's requests the page sends: (steps, quantity) of each body, in order."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sent: list[tuple[list[tuple[str, int]], str | None]] = []
        page.on("request", self._seen)

    def _seen(self, request: Request) -> None:
        if is_check(request):
            body = request.post_data_json
            steps = [(step["dose_mg"], step["days"]) for step in body["steps"]]
            self.sent.append((steps, body["quantity"]))

    def none_yet(self, *, before: int = 0) -> None:
        """No check started since there were `before`."""
        # Real time, on this side: the page's own waits would move its clock.
        time.sleep(NETWORK_GRACE_MS / 1000)
        self.page.evaluate("0")  # the driver hands over the events it has
        assert len(self.sent) == before, self.sent

    def after_the_pause(self, count: int) -> None:
        """DEBOUNCE_MS - 1 of quiet starts nothing; the last millisecond starts the pause's
        check: `count` requests in all, and no more."""
        before = len(self.sent)
        self.page.clock.run_for(DEBOUNCE_MS - 1)
        self.none_yet(before=before)
        self.page.clock.run_for(1)
        deadline = time.monotonic() + 10
        while len(self.sent) < before + count and time.monotonic() < deadline:
            self.page.wait_for_load_state()  # the driver hands over the events it has
            time.sleep(0.05)
        self.none_yet(before=before + count)

    def taken(self) -> list:
        """The requests since the last call."""
        sent, self.sent = self.sent, []
        return sent


def type_slowly(page: Page, checks: Checks, field: str, text: str) -> None:
    """Replace the field's text key by key, each key DEBOUNCE_MS - 1 after the one before: no
    pause long enough for a check."""
    box = page.locator(f'[name="{field}"]')
    box.select_text()
    for index, key in enumerate(text):
        if index:
            page.clock.run_for(DEBOUNCE_MS - 1)
        box.press_sequentially(key)
    checks.none_yet()


def test_one_check_per_pause_in_typing(live_server, page):
    prescriber, patient = a_prescriber_and_patient()
    sign_in(page, live_server.url, prescriber.user.email)
    started = datetime.datetime.now(datetime.UTC)
    page.clock.install(time=started)
    checks = Checks(page)
    page.goto(f"{live_server.url}/patients/{patient.pk}/orders/new/")
    # From here the page's time stands still but when the test moves it.
    page.clock.pause_at(started + datetime.timedelta(minutes=1))
    quantity = page.locator('[name="quantity"]')
    directions = page.locator("#directions")

    # The dose, typed key by key: one check of "4.5 x 30" after the pause, whose answer fills
    # in the quantity. None while typing.
    type_slowly(page, checks, "steps", "4.5 x 30")
    checks.after_the_pause(1)
    expect(quantity).to_have_value("30")
    expect(directions).to_have_text("Take 1 capsule (4.5 mg) at bedtime for 30 days.")
    assert checks.taken() == [([("4.5", 30)], None)]

    # The dose changed again: one more check, of the new schedule only.
    type_slowly(page, checks, "steps", "3 x 14")
    checks.after_the_pause(1)
    expect(quantity).to_have_value("14")
    expect(directions).to_have_text("Take 1 capsule (3 mg) at bedtime for 14 days.")
    assert checks.taken() == [([("3", 14)], None)]

    # A field outside the schedule keeps the quantity: one request per pause, and no more
    # however long the page then waits.
    type_slowly(page, checks, "refills", "12")
    checks.after_the_pause(1)
    expect(page.locator("#findings")).to_contain_text("12 refills is more than the maximum of 11.")
    assert checks.taken() == [([("3", 14)], "14")]
    page.clock.run_for(10 * DEBOUNCE_MS)
    checks.none_yet()
