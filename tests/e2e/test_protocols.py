"""In a real browser: a prescriber names the clinic's titration protocol (a schedule the rules
refuse is refused on its field first), their nurse starts a draft from it for a patient, and the
prescriber's order form is filled from it too; the rules check the order as usual."""

import pytest
from playwright.sync_api import Page, expect

from orders.models import Order, OrderStatus, TitrationProtocol
from prescribers.models import MembershipRole
from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in, sign_out
from tests.factories import MembershipFactory, clinic_of

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_protocol_named_by_the_prescriber_starts_the_nurses_draft(live_server, page: Page):
    prescriber, patient = a_prescriber_and_patient()
    nurse = MembershipFactory(clinic=clinic_of(prescriber), role=MembershipRole.STAFF).user
    base = live_server.url
    sign_in(page, base, prescriber.user.email)
    page.get_by_role("link", name="Protocols").click()

    form = page.locator("#protocol-form")
    form.get_by_label("Name").fill("Sensitive 0.5 mg steps")
    form.get_by_label("Schedule").fill("0.5 x 14, 1 x 14, 9 x 30")
    form.get_by_label("Days' supply").fill("58")
    form.get_by_role("button", name="Save the protocol").click()
    expect(form.locator(".invalid-feedback")).to_contain_text("9 mg")
    assert not TitrationProtocol.objects.exists()
    form.get_by_label("Schedule").fill("0.5 x 14, 1 x 14, 1.5 x 30")
    form.get_by_label("Refills").fill("2")
    form.get_by_role("button", name="Save the protocol").click()
    expect(page.locator("#protocols")).to_contain_text("0.5 x 14, 1 x 14, 1.5 x 30")
    sign_out(page, base)

    sign_in(page, base, nurse.email)
    page.goto(f"{base}/patients/{patient.pk}/orders/new/")
    page.get_by_label("Start from your clinic's protocol").select_option(
        label="Sensitive 0.5 mg steps"
    )
    page.get_by_role("button", name="Fill the schedule").click()
    expect(page.locator('[name="steps"]')).to_have_value("0.5 x 14, 1 x 14, 1.5 x 30")
    expect(page.locator('[name="quantity"]')).to_have_value("58")
    expect(page.locator('[name="refills"]')).to_have_value("2")
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    page.locator('[name="signer"]').select_option(str(prescriber.pk))
    expect(page.locator("#findings")).to_have_text("No problems found.")
    page.get_by_role("button", name="Submit order").click()

    draft = Order.objects.get()
    expect(page).to_have_url(f"{base}/orders/{draft.pk}/")
    assert draft.status == OrderStatus.DRAFT
    assert [str(step.dose_mg.normalize()) for step in draft.prescription.steps.all()] == [
        "0.5", "1", "1.5",
    ]  # fmt: skip
