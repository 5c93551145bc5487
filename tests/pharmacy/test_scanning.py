"""Scan to dispense: the technician scans the lot on each bottle; a missing scan, a lot of
another strength or product, an unknown lot, or a lot that cannot be dispensed is refused on its
line with what the line expects, and nothing is dispensed; the scans are kept on the dispenses."""

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.models import OrderStatus
from pharmacy.dispensing import expected_lots, line_needs
from pharmacy.models import Batch, BatchStatus, Dispense
from tests.factories import FormulationVersionFactory
from tests.pharmacy.test_dispensing import TITRATION, batch_of, capsule, order_for
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db


def scanned_form(order) -> dict[str, str]:
    """What a technician's scanner sends: for each line, the first lot that can fill it."""
    expected = expected_lots(order, line_needs(order))
    return {f"scan-{line}": lots[0].lot_number for line, lots in expected.items()}


@pytest.fixture
def stocked(prescriber):
    """A verified order of 14 x 1.5 mg and 30 x 3 mg, and a batch of each on the shelf."""
    order = order_for(prescriber, TITRATION)
    low = batch_of(FormulationVersionFactory(), lot_number="NX261201-C1.5-01")
    high = batch_of(FormulationVersionFactory(formulation=capsule("3")),
                    lot_number="NX261201-C3-01")  # fmt: skip
    lines = {line.formulation.strength_mg.normalize(): line
             for line in order.lines().select_related("formulation")}  # fmt: skip
    return order, lines[Decimal("1.5")], lines[Decimal("3")], low, high


def stock() -> list[tuple]:
    return list(Batch.objects.order_by("pk").values_list("lot_number", "units_remaining"))


def test_the_page_asks_for_a_scan_per_bottle_and_names_the_lots_that_fit(
    client, technician, stocked
):
    order, low_line, high_line, _low, _high = stocked
    verified_staff_login(client, technician)

    page = client.get(reverse("admin:orders_order_dispense", args=[order.pk])).content.decode()

    for line, lot in ((low_line, "NX261201-C1.5-01"), (high_line, "NX261201-C3-01")):
        assert f'name="scan-{line.pk}"' in page
        assert f"{lot} (BUD " in page


@pytest.mark.parametrize(
    ("low_scan", "message"),
    [
        ("", "Scan the lot on the bottle of Naltrexone HCl 1.5 mg capsule."),
        ("NX261201-C3-01", "Lot NX261201-C3-01 is Naltrexone HCl 3 mg capsule, not Naltrexone HCl "
                           "1.5 mg capsule: scan a bottle of Naltrexone HCl 1.5 mg capsule."),
        ("NX-NOPE", "Lot NX-NOPE is not a batch of this pharmacy: scan a bottle of Naltrexone "
                    "HCl 1.5 mg capsule."),
    ],
)  # fmt: skip
def test_a_wrong_scan_is_refused_on_its_line_and_nothing_is_dispensed(
    client, technician, stocked, low_scan, message
):
    order, low_line, high_line, _low, _high = stocked
    verified_staff_login(client, technician)
    before = stock()

    page = client.post(reverse("admin:orders_order_dispense", args=[order.pk]),
                       {f"scan-{low_line.pk}": low_scan,
                        f"scan-{high_line.pk}": "NX261201-C3-01"})  # fmt: skip

    assert page.status_code == 200
    rows = {row["line"].pk: row for row in page.context["rows"]}
    assert (rows[low_line.pk]["problem"], rows[high_line.pk]["problem"]) == (message, "")
    assert rows[high_line.pk]["scanned"] == "NX261201-C3-01"  # kept for the next try
    assert stock() == before
    assert not Dispense.objects.exists()
    order.refresh_from_db()
    assert order.status == OrderStatus.VERIFIED


def test_a_lot_that_cannot_be_dispensed_says_why(client, technician, stocked):
    order, low_line, high_line, low, _high = stocked
    Batch.objects.filter(pk=low.pk).update(status=BatchStatus.QUARANTINED)
    verified_staff_login(client, technician)

    page = client.post(reverse("admin:orders_order_dispense", args=[order.pk]),
                       {f"scan-{low_line.pk}": low.lot_number,
                        f"scan-{high_line.pk}": "NX261201-C3-01"})  # fmt: skip

    problem = {row["line"].pk: row["problem"] for row in page.context["rows"]}[low_line.pk]
    assert problem == (
        "Batch NX261201-C1.5-01 is quarantined: only released batches are dispensed."
    )
    assert not Dispense.objects.exists()


def test_the_scanned_lots_are_dispensed_and_kept_on_each_dispense(client, technician, stocked):
    order, low_line, high_line, low, high = stocked
    verified_staff_login(client, technician)

    answer = client.post(reverse("admin:orders_order_dispense", args=[order.pk]),
                         {f"scan-{low_line.pk}": "  nx261201-c1.5-01\n",
                          f"scan-{high_line.pk}": "NX261201-C3-01"})  # fmt: skip

    assert answer.status_code == 302
    rows = list(Dispense.objects.order_by("line__position").values_list(
        "line", "batch", "units", "scanned_code", "dispensed_by"))  # fmt: skip
    assert rows == [
        (low_line.pk, low.pk, Decimal("14"), "nx261201-c1.5-01", technician.pk),
        (high_line.pk, high.pk, Decimal("30"), "NX261201-C3-01", technician.pk),
    ]
    order.refresh_from_db()
    assert order.status == OrderStatus.COMPOUNDING
    assert stock() == [("NX261201-C1.5-01", Decimal("86")), ("NX261201-C3-01", Decimal("70"))]
