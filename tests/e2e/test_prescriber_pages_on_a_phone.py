"""The prescriber's ordering pages on a phone, as they look when the rules refuse something: each
fits a 390 px screen (and 360 px) without scrolling sideways, and axe-core (bundled with
axe-playwright-python, served by no CDN) finds no accessibility violation on it."""

import datetime

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from orders.services import patient_update
from tests.e2e.conftest import csp_unwatched
from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in
from tests.factories import TITRATION, submit_order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

AXE = Axe()


# The outermost elements that reach past the right edge of the screen (their tag and classes, and
# the nearest id around them), to say why a page does not fit.
WIDER_THAN_THE_SCREEN = """width => [...document.querySelectorAll("body, body *")]
  .filter(e => e.getBoundingClientRect().right > width + 1)
  .filter(e => !(e.parentElement.closest("body")
                  && e.parentElement.getBoundingClientRect().right > width + 1))
  .map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`
            + ` in #${e.parentElement.closest("[id]")?.id}`
            + ` (${Math.round(e.getBoundingClientRect().right)} px)`)"""


def fits_and_passes_axe(page: Page, what: str) -> None:
    for width in (390, 360):
        page.set_viewport_size({"width": width, "height": 844})
        if page.evaluate("document.documentElement.scrollWidth") != width:
            wider = page.evaluate(WIDER_THAN_THE_SCREEN, width)
            scrolled = page.evaluate("document.documentElement.scrollWidth")
            raise AssertionError(f"{what} is {scrolled} px wide, not {width}: {wider}")
    with csp_unwatched(page):
        violations = AXE.run(page).response["violations"]
    assert [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations] == [], what


def test_the_ordering_pages_fit_a_phone_and_pass_axe(live_server, page):
    prescriber, patient = a_prescriber_and_patient(date_of_birth=datetime.date(1970, 5, 5))
    order = submit_order(prescriber, patient, TITRATION)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, live_server.url, prescriber.user.email)

    # The order form, refused: a 58-day oral liquid outlasts its 35-day beyond-use date, and a
    # second open order for the patient is a warning left unticked.
    page.goto(f"{live_server.url}/patients/{patient.pk}/orders/new/")
    page.locator('[name="dosage_form"]').select_option("oral_liquid")
    page.get_by_role("button", name="Build steps").click()
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    expect(page.locator('#findings [data-code="days_supply.beyond_bud"]')).to_be_visible()
    page.get_by_role("button", name="Submit order").click()
    expect(page.locator("#acknowledge-refusal")).to_contain_text("Tick each warning")
    fits_and_passes_axe(page, "order form, refused")

    # The order's page, and the refill page with its early-refill warning.
    page.goto(f"{live_server.url}/orders/{order.pk}/")
    fits_and_passes_axe(page, "order page")
    page.goto(f"{live_server.url}/prescriptions/{order.prescription_id}/refill/")
    expect(page.get_by_label("Refill: Refill too soon", exact=False)).to_be_visible()
    fits_and_passes_axe(page, "refill page")

    # The patient form warning that "no opioids" contradicts the list, then refusing it.
    page.goto(f"{live_server.url}/patients/{patient.pk}/edit/")
    page.locator('[name="current_medications"]').fill("Tramadol50mg at night")
    expect(page.locator("#opioid-contradiction")).to_be_visible()
    fits_and_passes_axe(page, "patient form, warning")
    page.get_by_role("button", name="Save patient").click()
    expect(page.locator(".invalid-feedback").first).to_contain_text("name an opioid")
    fits_and_passes_axe(page, "patient form, refused")

    # A patient who now takes opioids: the refill page refuses, and the patient's page.
    patient_update(patient=patient, actor=prescriber.user, takes_opioids=True)
    page.goto(f"{live_server.url}/prescriptions/{order.prescription_id}/refill/")
    expect(page.locator("#refill-refusal")).to_contain_text("The patient takes opioids")
    fits_and_passes_axe(page, "refill page, refused")
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    fits_and_passes_axe(page, "patient page")
