"""An order for a patient in a state where the prescriber holds no licence is refused with the
reason, as the prescriber types and on submit, in Chromium; nothing is written."""

import pytest
from playwright.sync_api import expect

from orders.models import Order
from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

NO_LICENCE = "holds no licence in Wisconsin on file with the pharmacy"


def test_an_order_for_a_patient_where_the_prescriber_is_not_licensed_is_refused(live_server, page):
    prescriber, patient = a_prescriber_and_patient(state="WI")  # licensed in Illinois only
    sign_in(page, live_server.url, prescriber.user.email)
    page.goto(f"{live_server.url}/patients/{patient.pk}/orders/new/")

    page.get_by_role("button", name="Build steps").click()
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    refusal = page.locator('#findings [data-code="licence.missing"]')
    expect(refusal).to_contain_text(f"Prescriber: {prescriber} {NO_LICENCE}")
    expect(refusal).to_have_class("alert alert-danger py-2 small mb-2")

    page.get_by_role("button", name="Submit order").click()
    expect(page.locator("main")).to_contain_text(NO_LICENCE)
    expect(page).to_have_url(f"{live_server.url}/patients/{patient.pk}/orders/new/")
    assert Order.objects.count() == 0
