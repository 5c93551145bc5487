"""In a real browser: the shelf holds only 12 of the 4.5 mg capsules a 30-day order needs. The
technician scans the lot, types 12 under "Give now" and dispenses a partial fill with a reason;
the rest follows as the next order of the fill, which the prescriber sees on the order's page."""

import datetime
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Formulation, Order, OrderKind, OrderStatus
from orders.services import order_start_review, order_verify
from tests.e2e.signing_in import admin_sign_in
from tests.e2e.test_ordering import a_prescriber_and_patient, sign_in
from tests.factories import (
    TEST_PASSWORD,
    BatchFactory,
    FormulationVersionFactory,
    StaffFactory,
    submit_order,
)
from tests.signing_in import staff_device

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

THIRTY_DAYS = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("4.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip


def test_a_technician_dispenses_a_partial_fill_and_the_prescriber_sees_the_rest(
    live_server, page, new_context
):
    prescriber, patient = a_prescriber_and_patient(date_of_birth=datetime.date(1970, 5, 5))
    order = submit_order(prescriber, patient, THIRTY_DAYS)
    pharmacist = StaffFactory(group="Pharmacist", password=TEST_PASSWORD)
    technician = StaffFactory(group="Technician", password=TEST_PASSWORD)
    staff_device(technician)
    order = order_start_review(order=order, actor=pharmacist)
    order = order_verify(order=order, actor=pharmacist, password=TEST_PASSWORD)
    capsule = Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal("4.5"))
    BatchFactory(
        formulation_version=FormulationVersionFactory(formulation=capsule),
        lot_number="NX261205-C4.5-01", units_remaining=Decimal("12"),
        beyond_use_date=datetime.date.today() + datetime.timedelta(days=150),
    )  # fmt: skip
    line = order.lines().get()

    admin_sign_in(page, live_server.url, technician.email, TEST_PASSWORD)
    page.goto(f"{live_server.url}/admin/orders/order/{order.pk}/dispense/")
    expect(page.locator("#dispense-lines")).to_contain_text(
        "a partial fill can give part from NX261205-C4.5-01"
    )
    page.keyboard.type("NX261205-C4.5-01")  # the scan field has the focus
    page.get_by_label("Units of Naltrexone HCl 4.5 mg capsule to give now").fill("12")
    page.get_by_role("button", name="Dispense a partial fill").click()
    expect(page.locator("#partial-problem")).to_have_text("Write the reason for the partial fill.")
    assert not Order.objects.filter(kind=OrderKind.REMAINDER).exists()

    page.get_by_label("Reason").fill("Not enough stock")
    page.get_by_role("button", name="Dispense a partial fill").click()

    rest = Order.objects.get(kind=OrderKind.REMAINDER)
    expect(page.locator(".messagelist")).to_contain_text(
        f"The rest follows as order {rest.number}."
    )
    expect(page.locator("#summary-bottles")).to_contain_text("12 capsule")
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPOUNDING
    assert (rest.status, rest.follows_id) == (OrderStatus.VERIFIED, order.pk)
    assert [str(x) for x in rest.lines()] == [f"{line.formulation}: 18 capsules"]

    # The prescriber, in a browser of their own, sees both parts of the fill.
    portal = new_context().new_page()
    sign_in(portal, live_server.url, prescriber.user.email)
    portal.goto(f"{live_server.url}/orders/{order.pk}/")
    expect(portal.locator("#timeline")).to_contain_text(f"follows as order {rest.number}")
    portal.get_by_role("link", name=rest.number).click()
    expect(portal.locator("#order-lines")).to_have_text(f"{line.formulation}: 18 capsules")
    expect(portal.locator("#timeline")).to_contain_text(f"The rest of partial fill {order.number}")
