"""A nurse of the clinic drafts a new order and a refill for the prescriber, in Chromium; the
prescriber signs both at once with their password; the pharmacist sees them in the admin. The
nurse's order form and the prescriber's signing page fit a phone and pass axe-core."""

import datetime

import pytest
from playwright.sync_api import expect

from orders.models import Order, OrderEventKind, OrderKind, OrderStatus
from prescribers.models import MembershipRole
from tests.e2e.signing_in import admin_sign_in
from tests.e2e.test_ordering import sign_in, sign_out
from tests.e2e.test_prescriber_pages_on_a_phone import fits_and_passes_axe
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    MembershipFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    clinic_of,
    submit_order,
)
from tests.signing_in import staff_device

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_staff_draft_an_order_and_a_refill_the_prescriber_signs_both(live_server, page):
    prescriber = PrescriberFactory(first_name="Rhea", last_name="Signer")
    clinic = clinic_of(prescriber)
    nurse = MembershipFactory(
        clinic=clinic, role=MembershipRole.STAFF, user__first_name="Nell",
        user__last_name="Nurse",
    ).user  # fmt: skip
    born = datetime.date(1970, 5, 5)
    new_patient = PatientFactory(clinic=clinic, last_name="Newcome", date_of_birth=born)
    regular = PatientFactory(clinic=clinic, last_name="Regular", date_of_birth=born)
    earlier = submit_order(prescriber, regular, TITRATION)
    Order.objects.filter(pk=earlier.pk).update(status=OrderStatus.DELIVERED)

    # The nurse drafts a new order for the prescriber (the only one: already chosen).
    sign_in(page, live_server.url, nurse.email)
    page.goto(f"{live_server.url}/patients/{new_patient.pk}/")
    page.get_by_role("link", name="New LDN order").click()
    page.get_by_role("button", name="Build steps").click()
    page.locator('[name="diagnosis_codes"]').fill("M79.7")
    expect(page.locator("#findings")).to_have_text("No problems found.")
    expect(page.get_by_label("Prescriber to sign")).to_have_value(str(prescriber.pk))
    expect(page.locator("#draft-note")).to_contain_text("the prescriber reviews every warning")
    fits_and_passes_axe(page, "the nurse's order form")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Submit order").click()
    drafted = Order.objects.get(prescription__patient=new_patient)
    expect(page.locator(".alert-success")).to_contain_text(
        f"Draft {drafted.number} saved: it waits for {prescriber}'s signature."
    )
    expect(page.locator("#timeline")).to_contain_text(f"Drafted for {prescriber} to sign")
    expect(page.locator("#timeline")).to_contain_text("Nell Nurse")

    # ... and a refill of the regular patient's prescription.
    page.goto(f"{live_server.url}/prescriptions/{earlier.prescription_id}/refill/")
    expect(page.get_by_label("Prescriber to sign")).to_have_value(str(prescriber.pk))
    page.get_by_role("button", name="Request refill").click()
    refill = Order.objects.get(kind=OrderKind.REFILL)
    expect(page.locator(".alert-success")).to_contain_text(f"Draft {refill.number} saved")
    assert [drafted.status, refill.status] == [OrderStatus.DRAFT, OrderStatus.DRAFT]
    sign_out(page, live_server.url)

    # The prescriber finds both on the dashboard and signs them at once.
    sign_in(page, live_server.url, prescriber.user.email)
    drafts = page.locator("#drafts")
    expect(drafts).to_contain_text("Awaiting your signature")
    expect(drafts).to_contain_text(drafted.number)
    expect(drafts).to_contain_text(refill.number)
    page.get_by_role("link", name="Review and sign").click()
    expect(page.get_by_label(f"Sign {drafted.number}")).to_be_visible()  # the signing page
    fits_and_passes_axe(page, "the signing page")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_label(f"Sign {drafted.number}").check()
    page.get_by_label(f"Sign {refill.number}").check()
    page.get_by_label("Your password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign the chosen orders").click()
    # The refill is early (the first fill was today): signing waits for that warning's review.
    expect(page.locator(f"#draft-{refill.pk} .alert-danger")).to_contain_text(
        "Tick each warning to confirm you have reviewed it"
    )
    assert Order.objects.filter(status=OrderStatus.DRAFT).count() == 2
    page.get_by_label("Refill too soon", exact=False).check()
    page.get_by_label("Reason (duplicate therapy, early refill)").fill("Travels next week.")
    page.get_by_label("Your password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign the chosen orders").click()
    expect(page.locator(".alert-success")).to_contain_text(
        f"Signed 2 orders ({drafted.number}, {refill.number}): they go to the pharmacy."
    )
    expect(page.locator("#nothing-to-sign")).to_be_visible()
    for order in (drafted, refill):
        order.refresh_from_db()
        assert order.status == OrderStatus.SUBMITTED
        assert order.events.last().kind == OrderEventKind.SIGNED
    page.goto(f"{live_server.url}/orders/{drafted.pk}/")
    expect(page.locator("#timeline")).to_contain_text(f"Signed by {prescriber} and submitted")
    expect(page.locator("#timeline")).to_contain_text(
        "(signed: prescribed: signed and submitted to the pharmacy)"
    )
    sign_out(page, live_server.url)

    # The pharmacy sees both signed orders in its queue.
    pharmacist = StaffFactory(group="Pharmacist", password=TEST_PASSWORD)
    staff_device(pharmacist)
    admin_sign_in(page, live_server.url, pharmacist.email, TEST_PASSWORD)
    page.goto(f"{live_server.url}/admin/orders/order/?status__in=submitted,in_review")
    results = page.locator("#result_list")
    expect(results).to_contain_text(drafted.number)
    expect(results).to_contain_text(refill.number)
