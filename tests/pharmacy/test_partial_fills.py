# ruff: noqa: F811  (the fixtures imported from test_labels are parameters of the tests)
"""Partial fills: when stock, or the BUD of the lots in stock, covers only part of the days'
supply, the technician gives part now (scanned, its BUD reaching the day those units are used
up) and the rest becomes the next order of the same fill, with its own label and BUD, on the
prescriber's pages too. A refused partial fill changes nothing."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from orders.dosing import DosageForm, Regimen, Step, days_in_use
from orders.models import Order, OrderEventKind, OrderKind, OrderQuantity, OrderStatus
from pharmacy import labels
from pharmacy.dispensing import PartialRefused, ScansRefused, dispense_partial, dispense_scanned
from pharmacy.fulfilment import order_final_check
from pharmacy.labels import label_barcodes
from pharmacy.selectors import order_fully_dispensed
from tests.factories import TITRATION, BatchFactory
from tests.pharmacy.test_dispensing import in_days, snapshot
from tests.pharmacy.test_labels import (  # noqa: F401
    capsule_version,
    named_prescriber,
    pharmacist,
    submitted,
    verify,
)
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db
S = OrderStatus

THIRTY_DAYS = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("4.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip
REASON = "Not enough stock"


def lot(lot_number: str, units: str, bud_in_days: int, strength: str = "4.5"):
    return BatchFactory(
        formulation_version=capsule_version(strength), lot_number=lot_number,
        units_remaining=Decimal(units), beyond_use_date=in_days(bud_in_days),
    )  # fmt: skip


@pytest.fixture
def order(named_prescriber, pharmacist):
    return verify(submitted(named_prescriber, THIRTY_DAYS), pharmacist)


def only_line(order: Order):
    return order.lines().select_related("formulation").get()


# --- When the units of a bottle are taken (pure) ------------------------------------------------


@pytest.mark.parametrize(
    ("strength", "before", "units", "days"),
    [
        ("4.5", "0", "30", (1, 30)),  # one strength, the whole bottle
        ("4.5", "0", "12", (1, 12)),  # its first 12 days
        ("4.5", "12", "18", (13, 30)),  # the rest, from day 13
        ("1.5", "0", "14", (1, 14)),  # a titration's first bottle
        ("3", "0", "10", (15, 24)),  # the second bottle starts on day 15
        ("3", "10", "20", (25, 44)),  # and its rest runs to the end of its steps
        ("3", "0", "99", (15, 44)),  # more than the schedule uses: its last day
    ],
)
def test_days_in_use_follow_the_schedule(strength, before, units, days):
    regimen = THIRTY_DAYS if strength == "4.5" else TITRATION_44
    found = days_in_use(regimen, Decimal(strength), before=Decimal(before), units=Decimal(units))
    assert found == days


TITRATION_44 = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 14), Step(Decimal("3"), 30)),
    doses_per_day=1, quantity=Decimal("44"), days_supply=44, refills=0,
)  # fmt: skip


def test_days_in_use_of_a_liquid_count_every_step_in_ml():
    liquid = Regimen(
        dosage_form=DosageForm.ORAL_LIQUID, concentration_mg_per_ml=Decimal("1"),
        steps=(Step(Decimal("1.5"), 7), Step(Decimal("3"), 7)), doses_per_day=1,
        quantity=Decimal("31.5"), days_supply=14, refills=0,
    )  # fmt: skip
    # 7 days x 1.5 mL = 10.5 mL, then 3 mL a day: 15 mL last to day 9 (10.5 + 3 + 3 >= 15).
    assert days_in_use(liquid, None, before=Decimal(0), units=Decimal("15")) == (1, 9)
    assert days_in_use(liquid, None, before=Decimal("15"), units=Decimal("16.5")) == (9, 14)


# --- The service ------------------------------------------------------------------------------


def test_a_partial_fill_gives_part_now_and_the_rest_becomes_the_next_order_of_the_fill(
    order, technician
):
    lot("NX-A", "12", 200)
    line = only_line(order)

    result, rest = dispense_partial(
        order=order, actor=technician, scans={line.pk: "NX-A"}, units={line.pk: "12"},
        reason=REASON,
    )  # fmt: skip

    assert [(d.batch.lot_number, d.units, d.scanned_code) for d in result.dispenses] == [
        ("NX-A", Decimal("12"), "NX-A")
    ]
    assert result.notes == ["Dispensing started.", f"The rest follows as order {rest.number}."]
    order.refresh_from_db()
    assert (order.status, order_fully_dispensed(order)) == (S.COMPOUNDING, True)
    assert [str(line) for line in order.lines()] == ["Naltrexone HCl 4.5 mg capsule: 12 capsules"]
    rest.refresh_from_db()
    assert (rest.kind, rest.status, rest.follows_id, rest.fill_number, rest.prescription_id) == (
        OrderKind.REMAINDER, S.VERIFIED, order.pk, 0, order.prescription_id,
    )  # fmt: skip
    assert [str(line) for line in rest.lines()] == ["Naltrexone HCl 4.5 mg capsule: 18 capsules"]
    assert list(OrderQuantity.objects.order_by("order_id").values_list("order_id", "units")) == [
        (order.pk, Decimal("12")), (rest.pk, Decimal("18")),
    ]  # fmt: skip
    said = order.events.get(kind=OrderEventKind.PARTIAL_FILL)
    assert said.note == (
        "Partly filled (Not enough stock): 12 capsules of Naltrexone HCl 4.5 mg capsule now; "
        f"the rest (18 capsules of Naltrexone HCl 4.5 mg capsule) follows as order {rest.number}."
    )
    assert (said.from_status, said.to_status, said.actor) == (S.COMPOUNDING, S.COMPOUNDING,
                                                              technician)  # fmt: skip
    first = rest.events.get()
    assert (first.kind, first.from_status, first.to_status, first.note) == (
        OrderEventKind.PARTIAL_FILL, "", S.VERIFIED,
        f"The rest of partial fill {order.number} (Not enough stock): 18 capsules of "
        "Naltrexone HCl 4.5 mg capsule.",
    )  # fmt: skip


def test_each_part_has_its_own_label_quantity_bud_and_the_fills_verifier(
    order,
    technician,
    pharmacist,
):
    lot("NX-A", "12", 200)
    line = only_line(order)
    _result, rest = dispense_partial(order=order, actor=technician, scans={line.pk: "NX-A"},
                                     units={line.pk: "12"}, reason=REASON)  # fmt: skip
    lot("NX-B", "100", 250)
    dispense_scanned(order=rest, actor=technician, scans={line.pk: "NX-B"})

    (first,), (second,) = labels.label_pages(order), labels.label_pages(rest)

    assert (first.quantity, first.fill, first.lot_numbers, first.beyond_use_date) == (
        "12 capsules", "Original fill (partial: the rest follows)", ("NX-A",), in_days(200),
    )  # fmt: skip
    assert (second.quantity, second.fill, second.lot_numbers, second.beyond_use_date) == (
        "18 capsules", "Original fill (rest of a partial fill)", ("NX-B",), in_days(250),
    )  # fmt: skip
    # The pharmacist verified the fill once: both labels carry their initials.
    assert (first.pharmacist_initials, second.pharmacist_initials) == ("PQ", "PQ")
    assert first.rx_number == second.rx_number
    assert first.barcode_payload == f"{first.rx_number}|0|NX-A"
    assert second.barcode_payload == f"{first.rx_number}|0|NX-B"
    # The rest is checked and shipped on its own.
    assert order_fully_dispensed(rest)


def test_a_lot_whose_bud_covers_part_of_the_supply_gives_that_part(order, technician):
    """Thirty days of 4.5 mg, and the only lot's BUD is in 20 days: a full fill is refused, a
    partial fill of the 20 days its BUD covers is given; 21 would outlast it."""
    lot("NX-SHORT", "100", 20)
    line = only_line(order)

    with pytest.raises(Exception) as full:
        dispense_scanned(order=order, actor=technician, scans={line.pk: "NX-SHORT"})
    assert "or dispense a partial fill" in str(full.value)
    before = snapshot(order)
    with pytest.raises(PartialRefused) as too_many:
        dispense_partial(order=order, actor=technician, scans={line.pk: "NX-SHORT"},
                         units={line.pk: "21"}, reason=REASON)  # fmt: skip
    assert too_many.value.problems == {
        line.pk: f"Batch NX-SHORT's BUD {in_days(20):%Y-%m-%d} is before {in_days(21):%Y-%m-%d}, "
        "when these units are used up: choose a batch with a later BUD, or dispense fewer."
    }
    assert snapshot(order) == before

    _result, rest = dispense_partial(order=order, actor=technician, scans={line.pk: "NX-SHORT"},
                                     units={line.pk: "20"}, reason=REASON)  # fmt: skip
    assert [str(line) for line in rest.lines()] == ["Naltrexone HCl 4.5 mg capsule: 10 capsules"]


def test_the_rest_must_last_from_the_fills_start_to_its_end(order, technician):
    """The rest of a 30-day fill started today is taken on days 13 to 30: a lot whose BUD
    ends before day 30 cannot give it, even though 18 days from today it would still be good."""
    lot("NX-A", "12", 200)
    line = only_line(order)
    _result, rest = dispense_partial(order=order, actor=technician, scans={line.pk: "NX-A"},
                                     units={line.pk: "12"}, reason=REASON)  # fmt: skip
    lot("NX-25", "100", 25)
    before = snapshot(rest)

    with pytest.raises(ScansRefused) as refused:
        dispense_scanned(order=rest, actor=technician, scans={line.pk: "NX-25"})

    assert refused.value.problems == {
        line.pk: f"Batch NX-25's BUD {in_days(25):%Y-%m-%d} is before {in_days(30):%Y-%m-%d}, "
        "when these units are used up: choose a batch with a later BUD, or dispense fewer."
    }
    assert snapshot(rest) == before


@pytest.mark.parametrize(
    ("units", "reason", "problem"),
    [
        ("31", REASON, "Dispense between 0 and 30 capsule now."),
        ("-1", REASON, "Dispense between 0 and 30 capsule now."),
        ("ten", REASON, "“ten” is not a number of units."),
        ("1.005", REASON, "Units are counted to 2 decimal places; 1.005 has more."),
    ],
)
def test_units_that_are_not_a_part_are_refused_on_their_line(
    order, technician, units, reason, problem
):
    lot("NX-A", "100", 200)
    line = only_line(order)
    before = snapshot(order)

    with pytest.raises(PartialRefused) as refused:
        dispense_partial(order=order, actor=technician, scans={line.pk: "NX-A"},
                         units={line.pk: units}, reason=reason)  # fmt: skip

    assert refused.value.problems == {line.pk: problem}
    assert snapshot(order) == before
    assert not Order.objects.filter(kind=OrderKind.REMAINDER).exists()


@pytest.mark.parametrize(
    ("units", "reason", "message"),
    [
        ("30", REASON, "A partial fill gives some units now and fewer than the whole"),
        ("", REASON, "A partial fill gives some units now and fewer than the whole"),
        ("0", REASON, "A partial fill gives some units now and fewer than the whole"),
        ("12", "  ", "reason for the partial fill"),
    ],
)
def test_a_whole_fill_nothing_or_no_reason_is_not_a_partial_fill(
    order, technician, units, reason, message
):
    lot("NX-A", "100", 200)
    line = only_line(order)
    before = snapshot(order)

    with pytest.raises(ValidationError) as refused:
        dispense_partial(order=order, actor=technician, scans={line.pk: "NX-A"},
                         units={line.pk: units}, reason=reason)  # fmt: skip

    assert message in " ".join(refused.value.messages)
    assert snapshot(order) == before
    assert not Order.objects.filter(kind=OrderKind.REMAINDER).exists()


def test_a_titration_can_leave_a_whole_bottle_to_the_rest(named_prescriber, pharmacist, technician):
    order = verify(submitted(named_prescriber, TITRATION), pharmacist)
    lines = {line.formulation.strength_mg.normalize(): line for line in
             order.lines().select_related("formulation")}  # fmt: skip
    lot("NX-15", "100", 200, strength="1.5")
    lot("NX-30", "100", 200, strength="3")
    low, mid, high = lines[Decimal("1.5")], lines[Decimal("3")], lines[Decimal("4.5")]

    _result, rest = dispense_partial(
        order=order, actor=technician, scans={low.pk: "NX-15", mid.pk: "NX-30"},
        units={high.pk: "0"}, reason="No 4.5 mg in stock",
    )  # fmt: skip

    assert [str(line) for line in order.lines()] == [str(low), str(mid)]
    assert [line.pk for line in rest.lines()] == [high.pk]
    assert len(labels.label_pages(order)) == 2
    # The final check of the first part needs only its two bottles.
    assert order_fully_dispensed(order)


# --- The page ---------------------------------------------------------------------------------


def test_the_technician_dispenses_a_partial_fill_from_the_page(client, order, technician):
    lot("NX-A", "12", 200)
    line = only_line(order)
    verified_staff_login(client, technician)
    url = reverse("admin:orders_order_dispense", args=[order.pk])

    page = client.get(url).content.decode()
    assert "a partial fill can give part from NX-A (BUD" in page
    missing = client.post(url, {f"scan-{line.pk}": "NX-A", f"units-{line.pk}": "12",
                                "partial": "1", "partial-reason": ""})  # fmt: skip
    assert missing.status_code == 200
    assert missing.context["partial_problem"] == "Write the reason for the partial fill."
    assert not Order.objects.filter(kind=OrderKind.REMAINDER).exists()

    done = client.post(url, {f"scan-{line.pk}": "NX-A", f"units-{line.pk}": "12",
                             "partial": "1", "partial-reason": REASON}, follow=True)  # fmt: skip

    rest = Order.objects.get(kind=OrderKind.REMAINDER)
    assert done.redirect_chain[-1][0] == reverse("admin:orders_order_change", args=[order.pk])
    said = [str(m) for m in done.context["messages"]]
    assert f"The rest follows as order {rest.number}." in said
    assert f"Order {order.number} dispensed: 12 from NX-A." in said


def test_the_prescriber_sees_both_parts(client, order, technician, named_prescriber):
    lot("NX-A", "12", 200)
    line = only_line(order)
    _result, rest = dispense_partial(order=order, actor=technician, scans={line.pk: "NX-A"},
                                     units={line.pk: "12"}, reason=REASON)  # fmt: skip
    client.force_login(named_prescriber.user)

    page = client.get(reverse("order_detail", args=[order.pk])).content.decode()
    rest_page = client.get(reverse("order_detail", args=[rest.pk])).content.decode()

    assert "Partial fill" in page and f"follows as order {rest.number}" in page
    assert "Rest of a partial fill" in rest_page or "rest of partial fill" in rest_page
    assert "18 capsules" in rest_page


def test_a_final_check_of_the_part_is_possible_once_it_is_dispensed(order, technician, pharmacist):
    lot("NX-A", "12", 200)
    line = only_line(order)
    dispense_partial(order=order, actor=technician, scans={line.pk: "NX-A"},
                     units={line.pk: "12"}, reason=REASON)  # fmt: skip
    order.refresh_from_db()

    ready = order_final_check(order=order, actor=pharmacist, scans=label_barcodes(order))

    assert ready.status == S.READY


def test_the_admin_order_pages_show_what_each_part_dispenses(client, order, technician, pharmacist):
    lot("NX-A", "12", 200)
    line = only_line(order)
    _result, rest = dispense_partial(order=order, actor=technician, scans={line.pk: "NX-A"},
                                     units={line.pk: "12"}, reason=REASON)  # fmt: skip
    verified_staff_login(client, pharmacist)

    for part, units in ((order, "12"), (rest, "18")):
        page = client.get(reverse("admin:orders_order_change", args=[part.pk]))
        bottles = [(b.line.pk, b.line.units) for b in page.context["summary"].bottles]
        assert bottles == [(line.pk, Decimal(units))]
