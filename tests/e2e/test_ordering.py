"""In a real browser: a prescriber builds a titration schedule, sees the live dose check fill in
the directions and quantity, acknowledges a warning and submits; the order has its timeline."""

import io

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from orders.models import Order
from tests.factories import TEST_PASSWORD, PatientFactory, PrescriberFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_prescriber_builds_a_schedule_and_orders(live_server, page):
    prescriber = PrescriberFactory()
    patient = PatientFactory(
        clinic=prescriber.clinic, first_name="Quinn", last_name="Browser", takes_opioids=False,
        current_medications="",
    )  # fmt: skip

    page.goto(f"{live_server.url}/accounts/login/")
    page.locator('[name="username"]').fill(prescriber.user.email)
    page.locator('[name="password"]').fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live_server.url}/patients/{patient.pk}/")
    page.get_by_role("link", name="New LDN order").click()

    # 1.5 -> 3 -> 4.5 mg, 14 days a step, then 30 days at 4.5 mg, as a 1 mg/mL oral liquid.
    page.locator('[name="dosage_form"]').select_option("oral_liquid")
    page.get_by_role("button", name="Build steps").click()
    expect(page.locator('[name="steps"]')).to_have_value("1.5 x 14, 3 x 14, 4.5 x 30")
    expect(page.locator("#directions")).to_have_text(
        "Take 1.5 mg (1.5 mL) by mouth at bedtime for 14 days, then 3 mg (3 mL) by mouth at "
        "bedtime for 14 days, then 4.5 mg (4.5 mL) by mouth at bedtime for 30 days."
    )
    expect(page.locator('[name="quantity"]')).to_have_value("198")
    expect(page.locator('[name="days_supply"]')).to_have_value("58")
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    expect(page.locator("#findings")).to_have_text("No problems found.")

    # A 5 mg step: above the usual 4.5 mg maximum, a warning to acknowledge.
    page.locator('[name="steps"]').fill("1.5 x 14, 3 x 14, 4.5 x 14, 5 x 30")
    warning = page.locator("#findings .alert-warning")
    expect(warning).to_contain_text("Daily dose 5 mg in step 4 is above the usual maximum")
    expect(page.locator('[name="quantity"]')).to_have_value("276")
    expect(page.locator("#findings .alert-danger")).to_have_count(0)
    page.get_by_label("Daily dose 5 mg in step 4 is above the usual maximum", exact=False).check()
    page.get_by_role("button", name="Submit order").click()

    order = Order.objects.get()
    expect(page).to_have_url(f"{live_server.url}/orders/{order.pk}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(order.number)
    expect(page.locator("#timeline")).to_contain_text("Submitted")
    expect(page.locator("#acknowledged")).to_contain_text("Daily dose 5 mg in step 4")
    prescription = order.prescription
    assert (prescription.dosage_form, prescription.days_supply) == ("oral_liquid", 72)
    assert [line.quantity for line in prescription.lines.all()] == [276]
    assert [w["key"] for w in prescription.acknowledged_warnings] == [
        "dose.above_usual@steps.3.dose_mg"
    ]

    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.locator("tbody")).to_contain_text(order.number)


def test_demo_prescriber_orders_for_a_demo_patient(live_server, page, settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    page.goto(f"{live_server.url}/accounts/login/")
    page.locator('[name="username"]').fill("prescriber@demo.test")
    page.locator('[name="password"]').fill(settings.DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Orders", exact=True).click()
    expect(page.locator("tbody tr")).to_have_count(3)  # the seeded orders of this clinic

    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_role("link", name="Testpatient, Rowan").click()
    page.get_by_role("link", name="New LDN order").click()
    page.get_by_role("button", name="Build steps").click()
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    expect(page.locator("#findings")).to_have_text("No problems found.")
    page.get_by_role("button", name="Submit order").click()

    expect(page.get_by_role("alert")).to_contain_text("submitted.")
    order = Order.objects.latest("pk")
    assert order.prescription.patient.last_name == "Testpatient"
    assert [int(line.quantity) for line in order.prescription.lines.all()] == [14, 14, 30]
