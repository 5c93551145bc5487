"""In a real browser: a pharmacist recalls a batch in the admin (its stock and the units of an
order not shipped yet are set aside); the clinic's prescriber sees the recall's banner on every
portal page, opens the notice and confirms that the patients were told; the recall's page,
still open, shows the confirmation as it comes; the pharmacist orders the replacement for the
patient who holds the units with one click."""

import datetime
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from orders.dosing import DosageForm, Regimen, Step
from orders.models import FormulationVersion, Order, OrderKind, OrderQuantity, OrderStatus
from pharmacy.models import BatchStatus, Dispense, Recall
from tests.e2e.signing_in import admin_sign_in
from tests.e2e.test_ordering import sign_in
from tests.factories import (
    TEST_PASSWORD,
    BatchFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    clinic_of,
    submit_order,
)
from tests.signing_in import staff_device

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

MONTH = Regimen(
    dosage_form=DosageForm.CAPSULE,
    steps=(Step(Decimal("1.5"), 30),),
    doses_per_day=1,
    quantity=Decimal("30"),
    days_supply=30,
    refills=1,
)
LOT = "NX261101-C1.5-01"
REASON = "Supplier reports a potency failure of the naltrexone lot."


def order_given(prescriber, last_name: str, status: OrderStatus, batch) -> Order:
    """An order of the prescriber's clinic given 30 capsules of the batch, now in `status`."""
    patient = PatientFactory(
        clinic=clinic_of(prescriber),
        first_name="Quinn",
        last_name=last_name,
        takes_opioids=False,
        current_medications="",
        date_of_birth=datetime.date(1970, 5, 5),
    )
    order = submit_order(prescriber, patient, MONTH)
    Order.objects.filter(pk=order.pk).update(status=status)
    Dispense.objects.create(
        order=order,
        line=order.lines().get(),
        batch=batch,
        units=Decimal("30"),
        dispensed_by=batch.compounded_by,
    )
    return order


def test_a_recall_from_the_batch_to_the_replacements(live_server, page: Page, new_context):
    base = live_server.url
    pharmacist = StaffFactory(group="Pharmacist", first_name="Pat", last_name="Quincy")
    staff_device(pharmacist)
    prescriber = PrescriberFactory()
    version = FormulationVersion.objects.get(
        formulation__dosage_form="capsule",
        formulation__strength_mg=Decimal("1.5"),
        status="approved",
    )
    batch = BatchFactory(formulation_version=version, lot_number=LOT, units_remaining=Decimal("40"))
    shipped = order_given(prescriber, "Shipped", OrderStatus.SHIPPED, batch)
    waiting = order_given(prescriber, "Waiting", OrderStatus.COMPOUNDING, batch)

    # 1. The pharmacist recalls the batch from the list of batches, saying why.
    admin_sign_in(page, base, pharmacist.email, TEST_PASSWORD)
    page.goto(f"{base}/admin/pharmacy/batch/")
    page.locator(f'input[name="_selected_action"][value="{batch.pk}"]').check()
    page.locator('select[name="action"]').select_option("recall_batches")
    page.locator('button[name="index"]').click()
    page.locator('[name="reason"]').fill(REASON)
    page.locator('input[type="submit"][value="Recall batches"]').click()

    recall = Recall.objects.get()
    expect(page).to_have_url(f"{base}/admin/pharmacy/recall/{recall.pk}/change/")
    row = page.locator(f'#recall-batches tr[data-batch="{LOT}"]')
    expect(row).to_contain_text("Recalled")
    expect(row.locator(".recall-quarantined")).to_have_text("70")  # 40 on the shelf, 30 pulled
    expect(page.locator("#recall-pulled")).to_contain_text(waiting.number)
    expect(page.locator(f'#recall-replacements tr[data-order="{shipped.number}"]')).to_contain_text(
        "none yet"
    )
    notice = page.locator("#recall-notice-table tr[data-notice]")
    expect(notice).to_have_count(1)
    expect(notice.locator('[data-field="email"]')).to_contain_text("Sent ")
    expect(notice.locator('[data-field="confirmation"]')).to_have_text("not confirmed yet")
    batch.refresh_from_db()
    assert (batch.status, batch.units_remaining) == (BatchStatus.RECALLED, Decimal("0"))

    # 2. The prescriber sees the banner on any page of the portal, and confirms on the notice.
    clinic_page = new_context().new_page()
    sign_in(clinic_page, base, prescriber.user.email)
    clinic_page.goto(f"{base}/patients/")
    banner = clinic_page.locator("#recall-banner")
    expect(banner).to_contain_text(f"Recall of batch {LOT}")
    banner.get_by_role("link", name=f"Recall of batch {LOT}").click()
    expect(clinic_page.locator("#recalled-dispenses")).to_contain_text(shipped.number)
    expect(clinic_page.locator("#recalled-dispenses")).not_to_contain_text(waiting.number)
    clinic_page.get_by_role("button", name="Our patients have been told").click()
    name = prescriber.user.get_full_name()
    expect(clinic_page.locator("#recall-confirmation")).to_contain_text(name)
    expect(clinic_page.locator("#recall-banner")).to_have_count(0)
    clinic_page.goto(f"{base}/orders/")
    expect(clinic_page.locator("#recall-banner")).to_have_count(0)

    # 3. The pharmacist's page, left open, shows the confirmation without being reloaded.
    expect(notice.locator('[data-field="confirmation"]')).to_contain_text(f"confirmed by {name}")
    expect(page.locator("#recall-live")).to_have_text(
        "Every notice is sent and every clinic has confirmed that its patients were told."
    )

    # 4. One click orders the replacement of the shipped order; nothing is left to order.
    page.get_by_role("button", name="Order replacements for the affected patients").click()
    replacement = Order.objects.get(kind=OrderKind.REPLACEMENT)
    expect(page.locator(".messagelist .success")).to_have_text(
        f"1 replacement order made: {replacement.number}."
    )
    expect(page.locator(f'#recall-replacements tr[data-order="{shipped.number}"]')).to_contain_text(
        replacement.number
    )
    expect(page.locator("#recall-replaced")).to_be_visible()
    assert (replacement.follows_id, replacement.status) == (shipped.pk, OrderStatus.VERIFIED)
    quantities = OrderQuantity.objects.filter(order=replacement)
    assert list(quantities.values_list("units", flat=True)) == [Decimal("30")]
    assert not Order.objects.filter(follows=waiting).exists()
