"""In a real browser: a prescriber asks for a refill, which the rules check against the records as
they are now (an early refill is confirmed with a reason; a patient who now takes opioids gets
none); a pharmacist verifying an order sees what the rules say now and confirms a warning that
is new since the prescriber ordered."""

import datetime

import pytest
from playwright.sync_api import expect

from orders.models import Order, OrderStatus
from orders.services import order_start_review, patient_update
from tests.e2e.signing_in import admin_sign_in
from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    StaffFactory,
    submit_order,
)
from tests.signing_in import staff_device

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def ordered():
    prescriber, patient = a_prescriber_and_patient(date_of_birth=datetime.date(1970, 5, 5))
    return prescriber, patient, submit_order(prescriber, patient, TITRATION)


def test_a_prescriber_confirms_an_early_refill_with_a_reason(live_server, page, ordered):
    prescriber, _patient, order = ordered
    sign_in(page, live_server.url, prescriber.user.email)
    page.goto(f"{live_server.url}/orders/{order.pk}/")
    page.get_by_role("link", name="Request refill").click()

    expect(page.locator("#refill-lines")).to_have_text("Naltrexone HCl 4.5 mg capsule: 58 capsules")
    too_soon = page.get_by_label("Refill: Refill too soon", exact=False)
    expect(too_soon).to_be_visible()
    page.get_by_role("button", name="Request refill").click()  # neither tick nor reason
    expect(page.locator("#acknowledge-refusal")).to_contain_text(
        "Tick each warning to confirm you have reviewed it: Refill too soon"
    )
    assert Order.objects.count() == 1

    page.get_by_label("Refill: Refill too soon", exact=False).check()
    page.locator('[name="reason"]').fill("The patient travels for six weeks.")
    page.get_by_role("button", name="Request refill").click()

    refill = Order.objects.get(kind="refill")
    expect(page).to_have_url(f"{live_server.url}/orders/{refill.pk}/")
    expect(page.locator("#order-lines")).to_have_text("Naltrexone HCl 4.5 mg capsule: 58 capsules")
    expect(page.locator("#refill-acknowledged")).to_contain_text(
        "Reason: The patient travels for six weeks."
    )

    # On a phone: the refill page and the order page fit 360 px.
    page.set_viewport_size({"width": 360, "height": 800})
    for path in (f"/prescriptions/{order.prescription_id}/refill/", f"/orders/{refill.pk}/"):
        page.goto(f"{live_server.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") == 360, path


def test_no_refill_for_a_patient_who_now_takes_opioids(live_server, page, ordered):
    prescriber, patient, order = ordered
    patient_update(patient=patient, actor=prescriber.user, takes_opioids=True)
    sign_in(page, live_server.url, prescriber.user.email)
    page.goto(f"{live_server.url}/prescriptions/{order.prescription_id}/refill/")

    expect(page.locator("#refill-refusal")).to_contain_text(
        "Patient record: opioids: The patient takes opioids: naltrexone blocks opioids"
    )
    page.get_by_label("Refill: Refill too soon", exact=False).check()
    page.locator('[name="reason"]').fill("Travel.")
    page.get_by_role("button", name="Request refill").click()
    expect(page.locator("#refill-refusal")).to_contain_text("The patient takes opioids")
    assert Order.objects.count() == 1


def test_a_pharmacist_confirms_a_warning_new_since_the_order(live_server, page, ordered):
    prescriber, patient, order = ordered
    pharmacist = StaffFactory(group="Pharmacist", password=TEST_PASSWORD)
    staff_device(pharmacist)
    order_start_review(order=order, actor=pharmacist)
    patient_update(patient=patient, actor=prescriber.user, liver_disease=True)
    admin_sign_in(page, live_server.url, pharmacist.email, TEST_PASSWORD)

    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/move/verified/")
    expect(page.locator("#fill-check")).to_contain_text(
        "Warning · Patient record: liver disease: Known liver disease"
    )
    page.locator('[name="password"]').fill(TEST_PASSWORD)
    page.locator('input[type="submit"][value="Verify"]').click()
    expect(page.locator(".errornote, .errorlist").first).to_contain_text(
        "Confirm each new warning before verifying"
    )
    order.refresh_from_db()
    assert order.status == OrderStatus.IN_REVIEW

    page.get_by_label("Known liver disease", exact=False).check()
    page.locator('[name="password"]').fill(TEST_PASSWORD)
    page.locator('input[type="submit"][value="Verify"]').click()

    expect(page.locator(".messagelist .success")).to_contain_text("verified")
    order.refresh_from_db()
    assert order.status == OrderStatus.VERIFIED
    event = order.events.get(to_status=OrderStatus.VERIFIED)
    assert [w["key"] for w in event.parameters["acknowledged_warnings"]] == [
        "liver.disease@patient.liver_disease"
    ]
