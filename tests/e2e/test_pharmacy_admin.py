"""In a real browser, on the demo data: the pharmacist reviews and verifies (signs) the demo order
in the admin, the technician dispenses it from stock, the pharmacist does the final check, the
technician ships it and marks it delivered, and the prescriber sees every step on the order's
timeline in the portal."""

import io
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from playwright.sync_api import Locator, Page, expect

from orders.models import STATUS_KEPT_KINDS, Order, OrderEventKind, OrderStatus
from orders.workflow import SIGNATURE_MEANING
from pharmacy.dispensing import expected_lots, line_needs
from pharmacy.labels import label_barcodes
from pharmacy.models import (
    Batch,
    BatchStatus,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Dispense,
)
from tests.e2e.signing_in import admin_sign_in
from tests.e2e.test_prescriber_pages_on_a_phone import fits_and_passes_axe

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

PHARMACIST = "pharmacist@demo.test"
TECHNICIAN = "technician@demo.test"
PRESCRIBER = "prescriber@demo.test"
CARRIER = "UPS"
TRACKING_NUMBER = "1Z999AA10123456800"
WRONG_PASSWORD = "not-my-password-1"
BAD_SIGNATURE = "The password is not correct: the order was not verified."
# The work queues right after seed_demo: the capsule order of Testpatient is submitted, the
# Placeholder order is on hold, the Elsewhere order is ready (and the rest shipped or cancelled).
SEEDED_QUEUES = {
    "To review": "1",
    "On hold (waiting for the prescriber)": "1",
    "To compound and dispense": "0",
    "Ready to ship": "1",
}
TIMELINE = [
    "Submitted",
    "In review",
    "Verified",
    "Compounding and dispensing",
    "Ready",
    "Label ready to download (version 1)",  # rendered by the worker
    "Emailed: label ready",  # the clinic got the label PDF
    "Shipped",
    "Emailed: order shipped",
    "Delivered",
]


def workbench_page_passes_axe(page: Page, what: str) -> None:
    """A workbench page fits a phone (a pharmacist away from the bench) and passes axe-core;
    then the window is as wide as before."""
    size = page.viewport_size
    fits_and_passes_axe(page, what)
    page.set_viewport_size(size)


def open_order_by_number(page: Page, base_url: str, number: str) -> None:
    """The changelist's search box finds an order by its number."""
    page.goto(f"{base_url}/admin/orders/order/")
    page.locator("#searchbar").fill(number)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    page.get_by_role("link", name=number, exact=True).click()


def admin_order_url(order: Order) -> re.Pattern:
    """The order's admin page, with or without the changelist filters it was opened from."""
    return re.compile(rf"/admin/orders/order/{order.pk}/change/(\?[^/]*)?$")


def move_link(page: Page, label: str) -> Locator:
    """The button of the order's admin page, under its summary, that opens a move."""
    return page.locator("#order-moves").get_by_role("link", name=label, exact=True)


def make_move(page: Page, order: Order, label: str, fields: dict[str, str] | None = None) -> None:
    """From the order's admin page: open the move, fill its form, submit, and be back on the
    order's page."""
    move_link(page, label).click()
    expect(page.get_by_role("heading", name=f"{label}: order {order.number}")).to_be_visible()
    for name, value in (fields or {}).items():
        page.locator(f'[name="{name}"]').fill(value)
    page.locator(f'input[type="submit"][value="{label}"]').click()
    expect(page).to_have_url(admin_order_url(order))


def expect_moved(page: Page, order: Order, status: OrderStatus) -> None:
    expect(page.locator(".messagelist .success")).to_have_text(
        f"Order {order.number}: {status.label.lower()}."
    )
    order.refresh_from_db()
    assert order.status == status


@pytest.mark.slow
def test_demo_order_from_review_to_delivery(live_server, settings, page, new_context):
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    base = live_server.url
    order = Order.objects.select_related("prescription").get(
        prescription__patient__last_name="Testpatient"
    )
    prescription = order.prescription
    assert order.status == OrderStatus.SUBMITTED
    assert prescription.rx_number is None
    assert [int(line.quantity) for line in order.lines().order_by("position")] == [14, 14, 30]
    released_before = dict(
        Batch.objects.filter(status=BatchStatus.RELEASED).values_list("pk", "units_remaining")
    )

    # 1. The pharmacist signs in; the admin index starts with the work queues.
    pharmacist = page
    admin_sign_in(pharmacist, base, PHARMACIST, settings.DEMO_PASSWORD)
    queues = pharmacist.locator("#work-queues")
    for label, count in SEEDED_QUEUES.items():
        row = queues.locator("tr").filter(
            has=pharmacist.get_by_role("link", name=label, exact=True)
        )
        expect(row.locator(".queue-count")).to_have_text(count)
    workbench_page_passes_axe(pharmacist, "admin index: work queues and dashboard")
    queues.get_by_role("link", name="To review", exact=True).click()
    expect(pharmacist.locator("#result_list tbody tr")).to_have_count(1)
    pharmacist.get_by_role("link", name=order.number, exact=True).click()
    expect(pharmacist).to_have_url(admin_order_url(order))
    expect(move_link(pharmacist, "Verify")).to_have_count(0)  # not before the review started

    make_move(pharmacist, order, "Start review")
    expect_moved(pharmacist, order, OrderStatus.IN_REVIEW)
    expect(move_link(pharmacist, "Verify")).to_be_visible()

    # The technician, in a browser of their own, finds the order by its number: no signature.
    technician = new_context().new_page()
    admin_sign_in(technician, base, TECHNICIAN, settings.DEMO_PASSWORD)
    open_order_by_number(technician, base, order.number)
    expect(technician).to_have_url(admin_order_url(order))
    expect(technician.locator("ul.object-tools")).to_contain_text("History")
    expect(move_link(technician, "Verify")).to_have_count(0)
    expect(move_link(technician, "Put on hold")).to_have_count(0)
    expect(move_link(technician, "Dispense from stock")).to_have_count(0)

    # 2. The pharmacist signs: a wrong password first, which verifies nothing.
    move_link(pharmacist, "Verify").click()
    expect(pharmacist.get_by_text(SIGNATURE_MEANING, exact=True)).to_be_visible()
    # The summary of what is signed, beside the signature: side by side on a wide screen.
    summary = pharmacist.locator("#order-summary").bounding_box()
    signing = pharmacist.locator("#what-you-sign").bounding_box()
    assert summary["x"] + summary["width"] <= signing["x"], (summary, signing)
    expect(pharmacist.locator("#summary-patient")).to_contain_text(
        f"{prescription.patient.first_name} {prescription.patient.last_name}"
    )
    expect(pharmacist.locator("#what-you-sign")).to_contain_text(f"order {order.number} for")
    pharmacist.locator('[name="password"]').fill(WRONG_PASSWORD)
    pharmacist.locator('input[type="submit"][value="Verify"]').click()
    expect(pharmacist.locator(".errorlist.nonfield")).to_have_text(BAD_SIGNATURE)  # once
    expect(pharmacist.locator("#content")).to_contain_text(f"Order {order.number}, now in review.")
    order.refresh_from_db()
    assert order.status == OrderStatus.IN_REVIEW
    assert not order.events.filter(to_status=OrderStatus.VERIFIED).exists()
    prescription.refresh_from_db()
    assert prescription.rx_number is None
    workbench_page_passes_axe(pharmacist, "verify page, a wrong password refused")

    pharmacist.locator('[name="password"]').fill(settings.DEMO_PASSWORD)
    pharmacist.locator('input[type="submit"][value="Verify"]').click()
    expect(pharmacist).to_have_url(admin_order_url(order))
    expect_moved(pharmacist, order, OrderStatus.VERIFIED)
    workbench_page_passes_axe(pharmacist, "order page, verified")
    prescription.refresh_from_db()
    assert prescription.rx_number == str(settings.RX_NUMBER_START + prescription.pk)
    verification = order.events.get(to_status=OrderStatus.VERIFIED)
    assert verification.signature_meaning == "verified prescription"
    assert verification.signed_by == f"Pat Pharmacist <{PHARMACIST}>"
    assert verification.actor.email == PHARMACIST
    admin_timeline = (
        pharmacist.locator("fieldset")
        .filter(has=pharmacist.get_by_role("heading", name="Timeline", exact=True))
        .locator("tbody tr")
    )
    expect(admin_timeline).to_have_count(3)
    expect(admin_timeline.filter(has_text="verified prescription")).to_contain_text(
        f"Pat Pharmacist <{PHARMACIST}>: verified prescription"
    )
    expect(pharmacist.locator("#summary-prescription h2")).to_contain_text(
        f"Prescription Rx {prescription.rx_number}: original fill"
    )

    # 3. The technician scans each bottle's lot as a keyboard-wedge scanner does (the code,
    # then Enter): a bottle of the wrong strength first, refused on its line with nothing
    # dispensed; then the right one. The order is being compounded.
    technician.reload()
    expect(move_link(technician, "Verify")).to_have_count(0)
    move_link(technician, "Dispense from stock").click()
    expect(technician.get_by_role("heading", name=f"Dispense order {order.number}")).to_be_visible()
    expected = expected_lots(order, line_needs(order))
    lots = [expected[line.pk][0].lot_number for line in order.lines().order_by("position")]
    for code in [lots[1], *lots[1:]]:  # the first bottle scanned is the second strength's
        technician.keyboard.type(code)
        technician.keyboard.press("Enter")
    expect(technician.locator(".scan-problem")).to_have_count(1)
    expect(technician.locator(".scan-problem")).to_contain_text(f"Lot {lots[1]} is ")
    workbench_page_passes_axe(technician, "dispense page, a lot refused")
    assert not Dispense.objects.filter(order=order).exists()
    first = technician.locator("input[data-scan]").first
    first.fill("")
    first.focus()
    technician.keyboard.type(lots[0])
    technician.keyboard.press("Enter")
    expect(technician).to_have_url(admin_order_url(order))
    dispenses = list(
        Dispense.objects.filter(order=order).select_related("batch", "line").order_by("pk")
    )
    assert [(d.line.position, d.units) for d in dispenses] == [
        (line.position, line.quantity) for line in order.lines().order_by("position")
    ]
    assert [d.units for d in dispenses] == [Decimal(14), Decimal(14), Decimal(30)]
    used = ", ".join(f"{d.units.normalize():f} from {d.batch.lot_number}" for d in dispenses)
    expect(technician.locator(".messagelist .success")).to_have_text(
        f"Order {order.number} dispensed: {used}."
    )
    # No batch skipped for a beyond-use date before the end of the 58-day supply.
    expect(technician.locator(".messagelist .info")).to_have_text(["Dispensing started."])
    expect(technician.locator(".field-status")).to_contain_text("Compounding and dispensing")
    expect(technician.locator("#dispenses tbody tr")).to_have_count(3)
    expect(move_link(technician, "Final check: ready")).to_have_count(0)
    expect(move_link(technician, "Verify")).to_have_count(0)
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPOUNDING
    for dispense in dispenses:
        dispense.batch.refresh_from_db()
        assert dispense.batch.units_remaining == released_before[dispense.batch.pk] - dispense.units
        assert dispense.dispensed_by.email == TECHNICIAN
    assert len({d.batch.pk for d in dispenses}) == 3  # one batch per strength
    untouched = set(released_before) - {d.batch.pk for d in dispenses}
    assert dict(Batch.objects.filter(pk__in=untouched).values_list("pk", "units_remaining")) == {
        pk: released_before[pk] for pk in untouched
    }

    # The technician prints the labels at the dispensing bench's thermal printer: the action
    # asks for the station, and the job's page follows the rendering, then offers the file.
    technician.goto(f"{base}/admin/orders/order/")
    technician.locator(f'input[name="_selected_action"][value="{order.pk}"]').check()
    technician.locator('select[name="action"]').select_option(
        label="Print labels of the selected orders"
    )
    technician.get_by_role("button", name="Go", exact=True).click()
    station = technician.get_by_label("Dispensing bench (thermal, ZPL)")
    expect(station).to_be_visible()  # the station choice has loaded, not the list still leaving
    workbench_page_passes_axe(technician, "print station choice")
    station.check()
    technician.get_by_role("button", name="Print the labels of 1 order").click()
    expect(technician.locator("#print-progress")).to_contain_text("1 of 1 orders (100 %) · Done")
    workbench_page_passes_axe(technician, "print job, done")
    with technician.expect_download() as download:
        technician.locator("#print-download").click()
    zpl = download.value.path().read_text()
    assert download.value.suggested_filename.endswith(".zpl")
    assert zpl.count("^XA") == 3  # a label per bottle
    # ... each carrying its bottle's Code 128 barcode, the one the final check scans.
    assert [line for line in zpl.splitlines() if "^BC" in line] == [
        line for code in label_barcodes(order) for line in zpl.splitlines()
        if line.endswith(f"^FH_^FD>:{code}^FS")
    ]  # fmt: skip
    technician.goto(f"{base}/admin/orders/order/{order.pk}/change/")

    # 4. The pharmacist's final check: each bottle against its printed label, whose barcode
    # the scanner types with Enter. A label of another fill first, refused with what this
    # order's bottles need; then the three labels. The technician ships and marks it delivered.
    pharmacist.reload()
    move_link(pharmacist, "Final check: ready").click()
    expect(pharmacist.locator("#bottles-to-check li")).to_have_count(3)
    barcodes = label_barcodes(order)
    wrong = barcodes[0].replace("|0|", "|1|")  # the same bottle's label of a refill
    checked = pharmacist.locator('[name="labels"]')
    expect(checked).to_be_focused()
    for code in [wrong, *barcodes[1:]]:
        pharmacist.keyboard.type(code)
        pharmacist.keyboard.press("Enter")
    pharmacist.locator('input[type="submit"][value="Final check: ready"]').click()
    expect(pharmacist.locator(".errorlist.nonfield li")).to_have_text([
        f"The label scanned as “{wrong}” is not a label of this order: it is Rx "
        f"{prescription.rx_number}, fill 1, lot {wrong.split('|')[2]}. Put it aside and scan "
        "this order's labels.",
        re.compile(r"^Scan the label of the bottle of Naltrexone HCl 1\.5 mg capsule \(lot "),
    ])  # fmt: skip
    workbench_page_passes_axe(pharmacist, "final check, a label refused")
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPOUNDING
    checked.fill("")
    checked.focus()
    for code in barcodes:
        pharmacist.keyboard.type(code)
        pharmacist.keyboard.press("Enter")
    pharmacist.locator('input[type="submit"][value="Final check: ready"]').click()
    expect(pharmacist).to_have_url(admin_order_url(order))
    expect_moved(pharmacist, order, OrderStatus.READY)
    check = order.events.get(from_status=OrderStatus.COMPOUNDING, to_status=OrderStatus.READY)
    assert check.parameters == {"scanned_labels": barcodes}

    technician.reload()
    expect(move_link(technician, "Final check: ready")).to_have_count(0)
    make_move(technician, order, "Ship", {"carrier": CARRIER, "tracking_number": TRACKING_NUMBER})
    expect_moved(technician, order, OrderStatus.SHIPPED)
    assert (order.carrier, order.tracking_number) == (CARRIER, TRACKING_NUMBER)
    make_move(technician, order, "Mark delivered")
    expect_moved(technician, order, OrderStatus.DELIVERED)
    expect(technician.locator("#order-moves a")).to_have_count(0)

    timeline = list(order.events.order_by("created_at", "pk"))
    events = [e for e in timeline if e.kind not in STATUS_KEPT_KINDS]  # the moves
    # Beside the moves, the worker's label and the emails it sent (label ready, shipped).
    sent = Delivery.objects.filter(order=order, status=DeliveryStatus.SENT)
    assert sorted(
        (e.kind, e.parameters.get("about", "")) for e in timeline if e.kind in STATUS_KEPT_KINDS
    ) == sorted(
        [(OrderEventKind.LABEL_RENDERED, "")]
        + [(OrderEventKind.EMAIL_SENT, d.get_kind_display().lower()) for d in sent]
    )
    assert {d.kind for d in sent} == {DeliveryKind.LABEL_READY, DeliveryKind.SHIPPED}
    assert [(e.from_status or None, e.to_status) for e in events] == [
        (None, OrderStatus.SUBMITTED),
        (OrderStatus.SUBMITTED, OrderStatus.IN_REVIEW),
        (OrderStatus.IN_REVIEW, OrderStatus.VERIFIED),
        (OrderStatus.VERIFIED, OrderStatus.COMPOUNDING),
        (OrderStatus.COMPOUNDING, OrderStatus.READY),
        (OrderStatus.READY, OrderStatus.SHIPPED),
        (OrderStatus.SHIPPED, OrderStatus.DELIVERED),
    ]
    assert [e.actor.email for e in events[1:]] == [
        PHARMACIST, PHARMACIST, TECHNICIAN, PHARMACIST, TECHNICIAN, TECHNICIAN,
    ]  # fmt: skip
    assert [e for e in events if e.signature_meaning] == [verification]

    # 5. The prescriber sees every step on the order's timeline, and the tracking number.
    portal = new_context().new_page()
    portal.goto(f"{base}/accounts/login/")
    portal.locator('[name="username"]').fill(PRESCRIBER)
    portal.locator('[name="password"]').fill(settings.DEMO_PASSWORD)
    portal.get_by_role("button", name="Sign in").click()
    expect(portal).to_have_url(f"{base}/")
    portal.goto(f"{base}/orders/{order.pk}/")
    expect(portal.get_by_role("heading", level=1)).to_contain_text(order.number)
    expect(portal.get_by_role("heading", level=1)).to_contain_text("Delivered")
    expect(portal.locator("#timeline > li > strong")).to_have_text(TIMELINE)
    expect(portal.locator("#timeline > li").nth(2)).to_contain_text(
        f"(signed: {SIGNATURE_MEANING})"
    )
    expect(portal.get_by_text(f"{CARRIER} {TRACKING_NUMBER}", exact=True)).to_be_visible()
    expect(portal.get_by_text(prescription.rx_number, exact=True)).to_be_visible()
    with portal.expect_download() as download:
        portal.locator("#label-download").click()
    assert download.value.suggested_filename == f"label-{order.number}.pdf"
