"""Dispensing from batches: allocation earliest BUD first, every refusal, and the rollback of a
whole allocation when stock is short."""

import datetime
import re
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Formulation, Order, OrderEvent, OrderStatus
from pharmacy.dispensing import DispenseResult, dispense_allocate, dispense_from_batch
from pharmacy.models import Batch, BatchStatus, Dispense
from pharmacy.selectors import order_fully_dispensed, units_dispensed
from tests.factories import (
    BatchFactory,
    FormulationVersionFactory,
    PatientFactory,
    StaffFactory,
    clinic_of,
    submit_order,
)

pytestmark = pytest.mark.django_db
S = OrderStatus

ONE_STRENGTH = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip
# Two lines: 14 capsules of 1.5 mg, then 30 of 3 mg.
TITRATION = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 14), Step(Decimal("3"), 30)),
    doses_per_day=1, quantity=Decimal("44"), days_supply=44, refills=2,
)  # fmt: skip


def today() -> datetime.date:
    return timezone.localdate()


def in_days(days: int) -> datetime.date:
    return today() + datetime.timedelta(days=days)


def order_for(prescriber, regimen: Regimen = ONE_STRENGTH, status: S = S.VERIFIED) -> Order:
    """A submitted order put straight into `status` (no event: the tests count their own)."""
    patient = PatientFactory(
        clinic=clinic_of(prescriber), takes_opioids=False, current_medications="",
        date_of_birth=datetime.date(1970, 5, 5),
    )  # fmt: skip
    order = submit_order(prescriber, patient, regimen)
    Order.objects.filter(pk=order.pk).update(status=status)
    order.refresh_from_db()
    return order


def capsule(strength: str) -> Formulation:
    return Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal(strength))


@pytest.fixture
def version_1_5(db):
    return FormulationVersionFactory()  # the 1.5 mg capsule


@pytest.fixture
def version_3(db):
    return FormulationVersionFactory(formulation=capsule("3"))


def batch_of(version, *, units: str = "100", bud_in_days: int | None = 150, **fields) -> Batch:
    bud = None if bud_in_days is None else in_days(bud_in_days)
    return BatchFactory(
        formulation_version=version, units_remaining=Decimal(units), beyond_use_date=bud, **fields
    )


def snapshot(order: Order) -> dict:
    """Everything a refused dispense must leave as it was."""
    return {
        "dispenses": list(Dispense.objects.values_list("pk", flat=True)),
        "units": dict(Batch.objects.values_list("lot_number", "units_remaining")),
        "status": Order.objects.values_list("status", flat=True).get(pk=order.pk),
        "events": list(OrderEvent.objects.filter(order=order).values_list("pk", flat=True)),
    }


def taken(result: DispenseResult) -> list[tuple[str, int, Decimal]]:
    return [(d.batch.lot_number, d.line.position, d.units) for d in result.dispenses]


def units_left(*batches: Batch) -> list[Decimal]:
    return [Batch.objects.get(pk=b.pk).units_remaining for b in batches]


# --- dispense_allocate ----------------------------------------------------------------------


def test_allocation_takes_earliest_bud_first_across_batches(prescriber, technician, version_1_5):
    order = order_for(prescriber)  # one line: 30 capsules of 1.5 mg, verified
    late = batch_of(version_1_5, units="100", bud_in_days=150)
    early = batch_of(version_1_5, units="20", bud_in_days=60)
    early_too = batch_of(version_1_5, units="5", bud_in_days=60)  # same BUD, higher pk: second
    ignored = [
        batch_of(version_1_5, units="50", bud_in_days=40, status=BatchStatus.QUARANTINED),
        batch_of(version_1_5, units="50", bud_in_days=40, status=BatchStatus.RECALLED),
        batch_of(version_1_5, units="50", bud_in_days=40, status=BatchStatus.AWAITING_QC),
        batch_of(version_1_5, units="50", bud_in_days=-1),  # expired yesterday
        batch_of(version_1_5, units="0", bud_in_days=40),  # empty
    ]

    result = dispense_allocate(order=order, actor=technician)

    assert taken(result) == [
        (early.lot_number, 0, Decimal("20")),
        (early_too.lot_number, 0, Decimal("5")),
        (late.lot_number, 0, Decimal("5")),
    ]
    assert result.notes == ["Dispensing started."]
    assert units_left(early, early_too, late) == [Decimal("0"), Decimal("0"), Decimal("95")]
    assert units_left(*ignored) == [Decimal("50")] * 4 + [Decimal("0")]
    assert {d.dispensed_by for d in Dispense.objects.all()} == {technician}
    order.refresh_from_db()
    assert order.status == S.COMPOUNDING
    assert list(order.events.values_list("from_status", "to_status", "actor", "note")) == [
        ("", "submitted", prescriber.user.pk, "Prescription written and submitted."),
        ("verified", "compounding", technician.pk, "Dispensing started."),
    ]


def test_a_batch_whose_bud_ends_before_the_supply_is_skipped_with_a_note(
    prescriber, pharmacist, version_1_5
):
    order = order_for(prescriber)  # 30-day supply
    short = batch_of(version_1_5, units="100", bud_in_days=29)
    just_long_enough = batch_of(version_1_5, units="100", bud_in_days=30)

    result = dispense_allocate(order=order, actor=pharmacist)

    assert taken(result) == [(just_long_enough.lot_number, 0, Decimal("30"))]
    assert result.notes == [
        "Dispensing started.",
        f"Skipped batch {short.lot_number}: its BUD {in_days(29):%Y-%m-%d} is before the end of "
        f"the 30-day supply ({in_days(30):%Y-%m-%d}).",
    ]
    assert units_left(short, just_long_enough) == [Decimal("100"), Decimal("70")]


def test_two_line_titration_is_filled_line_by_line(prescriber, pharmacist, version_1_5, version_3):
    order = order_for(prescriber, TITRATION)
    low = batch_of(version_1_5, units="20")
    high = batch_of(version_3, units="40")

    result = dispense_allocate(order=order, actor=pharmacist)

    assert taken(result) == [
        (low.lot_number, 0, Decimal("14")),
        (high.lot_number, 1, Decimal("30")),
    ]
    assert units_left(low, high) == [Decimal("6"), Decimal("10")]


def test_not_enough_stock_rolls_the_whole_allocation_back(
    prescriber, pharmacist, version_1_5, version_3
):
    order = order_for(prescriber, TITRATION)  # needs 14 of 1.5 mg and 30 of 3 mg
    batch_of(version_1_5, units="20")  # enough for the first line
    batch_of(version_3, units="5", bud_in_days=100)
    batch_of(version_3, units="4", bud_in_days=120)
    short = batch_of(version_3, units="100", bud_in_days=20)  # ends before the 44-day supply
    before = snapshot(order)

    with pytest.raises(ValidationError) as refused:
        dispense_allocate(order=order, actor=pharmacist)

    assert refused.value.messages == [
        "Not enough released stock of Naltrexone HCl 3 mg capsule: 30 needed, 9 usable.",
        f"Skipped batch {short.lot_number}: its BUD {in_days(20):%Y-%m-%d} is before the end of "
        f"the 44-day supply ({in_days(44):%Y-%m-%d}).",
    ]
    assert snapshot(order) == before  # the first line's batch too; the order still verified
    assert before["status"] == S.VERIFIED


def test_allocation_fills_only_what_is_still_missing(prescriber, pharmacist, version_1_5):
    order = order_for(prescriber, status=S.COMPOUNDING)
    first, second = batch_of(version_1_5, bud_in_days=60), batch_of(version_1_5, bud_in_days=90)
    line = order.lines().get()
    dispense_from_batch(order=order, line=line, batch=second, units=Decimal("12"), actor=pharmacist)

    result = dispense_allocate(order=order, actor=pharmacist)

    assert taken(result) == [(first.lot_number, 0, Decimal("18"))]
    assert result.notes == []  # already compounding: no transition
    assert units_dispensed(order) == {line.pk: Decimal("30")}
    assert order.events.count() == 1


def test_allocating_again_once_fully_dispensed_does_nothing(prescriber, pharmacist, version_1_5):
    order = order_for(prescriber)
    batch = batch_of(version_1_5)
    dispense_allocate(order=order, actor=pharmacist)
    before = snapshot(order)

    result = dispense_allocate(order=order, actor=pharmacist)

    assert result == DispenseResult(
        dispenses=[], notes=[f"Order {order.number} is already fully dispensed."]
    )
    assert snapshot(order) == before
    assert units_left(batch) == [Decimal("70")]


@pytest.mark.parametrize("status", [s for s in S if s not in (S.VERIFIED, S.COMPOUNDING)])
def test_only_a_verified_or_compounding_order_is_dispensed(
    prescriber, pharmacist, version_1_5, status
):
    order = order_for(prescriber, status=status)
    batch = batch_of(version_1_5)
    line = order.lines().get()
    before = snapshot(order)
    words = S(status).label[:1].lower() + S(status).label[1:]
    message = f"Order {order.number} is {words}: only a verified order, or one being compounded"

    with pytest.raises(ValidationError, match=re.escape(message)):
        dispense_allocate(order=order, actor=pharmacist)
    with pytest.raises(ValidationError, match=re.escape(message)):
        dispense_from_batch(order=order, line=line, batch=batch, units=Decimal(1), actor=pharmacist)

    assert snapshot(order) == before


# --- dispense_from_batch --------------------------------------------------------------------


def test_dispensing_from_a_batch_starts_compounding(prescriber, technician, version_1_5):
    order = order_for(prescriber)
    # Its BUD is the last day of the 30-day supply: usable (the patient takes the last dose then).
    batch = batch_of(version_1_5, units="10", bud_in_days=30)
    line = order.lines().get()

    dispense = dispense_from_batch(
        order=order, line=line, batch=batch, units=Decimal("2.5"), actor=technician
    )

    assert (dispense.order, dispense.line, dispense.batch, dispense.units) == (
        order, line, batch, Decimal("2.5"),
    )  # fmt: skip
    assert dispense.dispensed_by == technician
    assert dispense.batch.units_remaining == Decimal("7.5")
    assert units_left(batch) == [Decimal("7.5")]
    order.refresh_from_db()
    assert order.status == S.COMPOUNDING
    assert list(order.events.values_list("to_status", "note"))[1:] == [
        ("compounding", "Dispensing started.")
    ]


@pytest.mark.parametrize(
    ("batch_fields", "units", "message"),
    [
        ({"status": BatchStatus.QUARANTINED}, "1",
         "Batch {lot} is quarantined: only released batches are dispensed."),
        ({"status": BatchStatus.RECALLED}, "1",
         "Batch {lot} is recalled: only released batches are dispensed."),
        ({"status": BatchStatus.AWAITING_QC}, "1",
         "Batch {lot} is awaiting QC: only released batches are dispensed."),
        ({"status": BatchStatus.IN_PROGRESS}, "1",
         "Batch {lot} is in progress: only released batches are dispensed."),
        ({"status": BatchStatus.REJECTED}, "1",
         "Batch {lot} is rejected: only released batches are dispensed."),
        ({"bud_in_days": -1}, "1",
         "Batch {lot} expired on {yesterday} (its beyond-use date): it cannot be dispensed."),
        ({"bud_in_days": None}, "1",
         "Batch {lot} has no beyond-use date: it cannot be dispensed."),
        ({"units": "3"}, "4", "Batch {lot} has only 3 units left, not enough for 4."),
        ({"units": "0"}, "1", "Batch {lot} has only 0 units left, not enough for 1."),
        ({}, "0", "Dispense a positive number of units, not 0."),
        ({}, "-2", "Dispense a positive number of units, not -2."),
        ({}, "0.001", "Units are counted to 2 decimal places; 0.001 has more."),
        ({}, "31", "Naltrexone HCl 1.5 mg capsule for order {order}: 30 prescribed, 0 already "
                   "dispensed; 31 more would be too many."),
    ],
)  # fmt: skip
def test_dispense_from_batch_refusals_change_nothing(
    prescriber, pharmacist, version_1_5, batch_fields, units, message
):
    order = order_for(prescriber)  # verified: a refusal must not start compounding either
    batch = batch_of(version_1_5, **batch_fields)
    line = order.lines().get()
    before = snapshot(order)
    expected = message.format(
        lot=batch.lot_number, yesterday=f"{in_days(-1):%Y-%m-%d}", order=order.number
    )

    with pytest.raises(ValidationError) as refused:
        dispense_from_batch(
            order=order, line=line, batch=batch, units=Decimal(units), actor=pharmacist
        )

    assert refused.value.messages == [expected]
    assert snapshot(order) == before


def test_a_batch_of_another_formulation_is_refused(prescriber, pharmacist, version_3):
    order = order_for(prescriber)  # 1.5 mg capsules
    batch = batch_of(version_3)
    before = snapshot(order)

    with pytest.raises(ValidationError) as refused:
        dispense_from_batch(
            order=order, line=order.lines().get(), batch=batch, units=Decimal(1),
            actor=pharmacist,
        )  # fmt: skip

    assert refused.value.messages == [
        f"Batch {batch.lot_number} is Naltrexone HCl 3 mg capsule, but the line is for "
        "Naltrexone HCl 1.5 mg capsule."
    ]
    assert snapshot(order) == before


def test_a_line_of_another_order_is_refused(prescriber, pharmacist, version_1_5):
    order, other = order_for(prescriber), order_for(prescriber)
    batch = batch_of(version_1_5)
    before = snapshot(order)

    with pytest.raises(ValidationError) as refused:
        dispense_from_batch(
            order=order, line=other.lines().get(), batch=batch, units=Decimal(1),
            actor=pharmacist,
        )  # fmt: skip

    assert refused.value.messages == [
        f"That prescription line is not a line of order {order.number}."
    ]
    assert snapshot(order) == before
    assert snapshot(other)["status"] == S.VERIFIED


def test_units_must_be_a_decimal(prescriber, pharmacist, version_1_5):
    order = order_for(prescriber)
    batch = batch_of(version_1_5)
    with pytest.raises(TypeError, match="units must be a Decimal, not float"):
        dispense_from_batch(
            order=order, line=order.lines().get(), batch=batch, units=1.5,
            actor=pharmacist,
        )  # fmt: skip


@pytest.fixture(params=["prescriber", "staff without a role", "inactive pharmacist"])
def not_pharmacy_staff(request, prescriber):
    if request.param == "prescriber":
        return prescriber.user
    if request.param == "staff without a role":
        return StaffFactory()
    return StaffFactory(group="Pharmacist", is_active=False)


def test_only_pharmacists_and_technicians_dispense(prescriber, not_pharmacy_staff, version_1_5):
    order = order_for(prescriber)
    batch = batch_of(version_1_5)
    before = snapshot(order)

    with pytest.raises(PermissionDenied):
        dispense_allocate(order=order, actor=not_pharmacy_staff)
    with pytest.raises(PermissionDenied):
        dispense_from_batch(
            order=order, line=order.lines().get(), batch=batch, units=Decimal(1),
            actor=not_pharmacy_staff,
        )  # fmt: skip

    assert snapshot(order) == before


# --- reading what was dispensed -------------------------------------------------------------


def test_units_dispensed_and_fully_dispensed(prescriber, pharmacist, version_1_5, version_3):
    order = order_for(prescriber, TITRATION)
    low, high = order.lines().order_by("position")
    batch_of(version_1_5)
    batch_of(version_3)
    assert units_dispensed(order) == {low.pk: Decimal("0"), high.pk: Decimal("0")}
    assert order_fully_dispensed(order) is False

    dispense_from_batch(
        order=order, line=low, batch=Batch.objects.get(formulation_version=version_1_5),
        units=Decimal("14"), actor=pharmacist,
    )  # fmt: skip
    assert units_dispensed(order) == {low.pk: Decimal("14"), high.pk: Decimal("0")}
    assert order_fully_dispensed(order) is False

    dispense_allocate(order=order, actor=pharmacist)

    assert units_dispensed(order) == {low.pk: Decimal("14"), high.pk: Decimal("30")}
    assert order_fully_dispensed(order) is True
    # Another order of the same prescriber is counted on its own.
    assert order_fully_dispensed(order_for(prescriber, TITRATION)) is False


def test_reading_what_was_dispensed_takes_one_query(
    prescriber, pharmacist, version_1_5, version_3, django_assert_num_queries
):
    order = order_for(prescriber, TITRATION)
    batch_of(version_1_5, units="7", bud_in_days=60)
    batch_of(version_1_5, units="7", bud_in_days=90)
    batch_of(version_3, units="15", bud_in_days=60)
    batch_of(version_3, units="15", bud_in_days=90)
    dispense_allocate(order=order, actor=pharmacist)
    assert Dispense.objects.count() == 4

    with django_assert_num_queries(1):
        dispensed = units_dispensed(order)
    with django_assert_num_queries(1):
        full = order_fully_dispensed(order)

    assert sorted(dispensed.values()) == [Decimal("14"), Decimal("30")]
    assert full is True
