"""Dispensing under concurrency on PostgreSQL: row locks and the conditional F() update, not
timing, decide who gets the last units of a batch."""

import datetime
from decimal import Decimal
from functools import partial

import pytest
from django.core.exceptions import ValidationError
from django.db.models import Sum
from django.utils import timezone

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Order, OrderEvent, OrderStatus
from pharmacy.dispensing import dispense_allocate, dispense_from_batch
from pharmacy.models import Batch, Dispense
from tests.factories import (
    BatchFactory,
    FormulationVersionFactory,
    PatientFactory,
    PrescriberFactory,
    StaffFactory,
    clinic_of,
    submit_order,
)
from tests.integration.test_postgres_locks import run_together

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE, steps=(Step(Decimal("1.5"), 30),), doses_per_day=1,
    quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip
THREADS, UNITS_IN_BATCH, ROUNDS = 8, 5, 20


def verified_orders(count: int) -> list[Order]:
    """`count` orders of 30 capsules of 1.5 mg, each its own prescription, all verified."""
    prescriber = PrescriberFactory()
    patient = PatientFactory(
        clinic=clinic_of(prescriber), takes_opioids=False, current_medications="",
        date_of_birth=datetime.date(1970, 1, 1),
    )  # fmt: skip
    pks = []
    for _ in range(count):
        order = submit_order(prescriber, patient, REGIMEN)
        pks.append(order.pk)
    Order.objects.filter(pk__in=pks).update(status=OrderStatus.VERIFIED)
    return list(Order.objects.filter(pk__in=pks).order_by("pk"))


def in_days(days: int) -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=days)


def test_eight_people_dispensing_the_last_five_units_at_once(postgresql):
    staff = [StaffFactory(group="Pharmacist"), StaffFactory(group="Technician")]
    version = FormulationVersionFactory()
    # One order per person, so only the batch row is contended (each order needs 30 units:
    # 20 rounds never fill one).
    orders = verified_orders(THREADS)
    lines = [order.lines().get() for order in orders]

    def dispense_one(index, batch):
        return lambda: dispense_from_batch(
            order=orders[index], line=lines[index], batch=batch, units=Decimal("1"),
            actor=staff[index % 2],
        )  # fmt: skip

    for _ in range(ROUNDS):
        batch = BatchFactory(
            formulation_version=version, units_remaining=Decimal(UNITS_IN_BATCH),
            beyond_use_date=in_days(120),
        )  # fmt: skip

        results = run_together(*[dispense_one(i, batch) for i in range(THREADS)])

        dispensed = [r for r in results if isinstance(r, Dispense)]
        refused = [r for r in results if isinstance(r, ValidationError)]
        assert (len(dispensed), len(refused)) == (UNITS_IN_BATCH, THREADS - UNITS_IN_BATCH), results
        assert {error.code for error in refused} == {"not_enough_units"}
        assert {error.messages[0] for error in refused} == {
            f"Batch {batch.lot_number} has only 0 units left, not enough for 1."
        }
        batch.refresh_from_db()
        assert batch.units_remaining == Decimal("0")
        assert Dispense.objects.filter(batch=batch).count() == UNITS_IN_BATCH
        assert Batch.objects.filter(units_remaining__lt=0).count() == 0

    assert Batch.objects.count() == ROUNDS
    assert Dispense.objects.aggregate(total=Sum("units"))["total"] == UNITS_IN_BATCH * ROUNDS
    # Each order that got units moved to compounding exactly once, by its first dispense.
    for order in orders:
        order.refresh_from_db()
        started = OrderEvent.objects.filter(order=order, to_status=OrderStatus.COMPOUNDING)
        if order.dispenses.exists():
            assert (order.status, started.count()) == (OrderStatus.COMPOUNDING, 1)
        else:
            assert (order.status, started.count()) == (OrderStatus.VERIFIED, 0)


def test_two_allocations_sharing_batches_neither_deadlock_nor_oversell(postgresql):
    pharmacist = StaffFactory(group="Pharmacist")
    technician = StaffFactory(group="Technician")
    version = FormulationVersionFactory()

    for _ in range(5):
        first, second = verified_orders(2)
        # 40 units in all, 30 needed by each order: exactly one of them can be filled.
        earlier = BatchFactory(
            formulation_version=version, units_remaining=Decimal("20"),
            beyond_use_date=in_days(60),
        )  # fmt: skip
        later = BatchFactory(
            formulation_version=version, units_remaining=Decimal("20"),
            beyond_use_date=in_days(90),
        )  # fmt: skip

        results = run_together(
            partial(dispense_allocate, order=first, actor=pharmacist),
            partial(dispense_allocate, order=second, actor=technician),
        )

        refused = [r for r in results if isinstance(r, ValidationError)]
        filled = [r for r in results if not isinstance(r, Exception)]
        assert (len(filled), len(refused)) == (1, 1), results
        assert refused[0].messages == [
            "Not enough released stock of Naltrexone HCl 1.5 mg capsule: 30 needed, 10 usable."
        ]
        assert [(d.batch_id, d.units) for d in filled[0].dispenses] == [
            (earlier.pk, Decimal("20")),
            (later.pk, Decimal("10")),
        ]
        earlier.refresh_from_db()
        later.refresh_from_db()
        assert (earlier.units_remaining, later.units_remaining) == (Decimal("0"), Decimal("10"))
        statuses = set(
            Order.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)
        )
        assert statuses == {OrderStatus.COMPOUNDING, OrderStatus.VERIFIED}
        # The loser's order has no dispense rows: its whole allocation rolled back.
        assert Dispense.objects.filter(order__in=[first, second]).count() == 2
        # Leave nothing usable behind for the next round.
        Batch.objects.filter(pk=later.pk).update(units_remaining=0)
