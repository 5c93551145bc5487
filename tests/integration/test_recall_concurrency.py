"""Recalls under concurrency on PostgreSQL: a recall and a dispense of the same batch at once
never deadlock and never leave recalled units in an order not shipped; two pharmacists ordering
a recall's replacements at once make each replacement once."""

from decimal import Decimal
from functools import partial

import pytest
from django.core.exceptions import ValidationError

from orders.models import Order, OrderKind, OrderStatus
from pharmacy.dispensing import dispense_from_batch
from pharmacy.models import Dispense, PulledDispense, Recall, RecallBatch, RecallReplacement
from pharmacy.recalls import batch_recall, recall_replacements_create
from tests.factories import BatchFactory, FormulationVersionFactory, StaffFactory
from tests.integration.test_dispensing_concurrency import in_days, verified_orders
from tests.integration.test_postgres_locks import run_together

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
REASON = "Supplier reports a potency failure of the naltrexone lot."
ROUNDS = 8


def test_a_recall_and_a_dispense_of_the_batch_at_once(postgresql):
    """Whichever commits first, the units end up set aside: dispensed first, they are pulled
    back by the recall; recalled first, the dispense is refused."""
    pharmacist, technician = StaffFactory(group="Pharmacist"), StaffFactory(group="Technician")
    version = FormulationVersionFactory()
    orders = verified_orders(ROUNDS)

    for order in orders:
        batch = BatchFactory(
            formulation_version=version, units_remaining=Decimal("50"), beyond_use_date=in_days(120)
        )
        results = run_together(
            partial(batch_recall, batch=batch, actor=pharmacist, reason=REASON),
            partial(
                dispense_from_batch,
                order=order,
                line=order.lines().get(),
                batch=batch,
                units=Decimal("30"),
                actor=technician,
            ),
        )

        recalled, dispensed = results
        assert isinstance(recalled, Recall), results
        quarantine = RecallBatch.objects.get(batch=batch)
        if isinstance(dispensed, Dispense):  # the dispense came first: pulled back
            assert (quarantine.units_in_stock, quarantine.units_pulled) == (
                Decimal("20"),
                Decimal("30"),
            )
            assert PulledDispense.objects.filter(order=order).count() == 1
        else:
            assert isinstance(dispensed, ValidationError), results
            assert dispensed.code == "batch_not_released"
            assert (quarantine.units_in_stock, quarantine.units_pulled) == (
                Decimal("50"),
                Decimal("0"),
            )
        batch.refresh_from_db()
        assert batch.units_remaining == Decimal("0")
        assert not Dispense.objects.filter(batch=batch).exists()


def test_two_pharmacists_ordering_replacements_at_once_make_each_once(postgresql):
    first, second = StaffFactory(group="Pharmacist"), StaffFactory(group="Pharmacist")
    technician = StaffFactory(group="Technician")
    batch = BatchFactory(formulation_version=FormulationVersionFactory())
    shipped = verified_orders(3)
    for order in shipped:
        Dispense.objects.create(
            order=order,
            line=order.lines().get(),
            batch=batch,
            units=Decimal("30"),
            dispensed_by=technician,
        )
    Order.objects.filter(pk__in=[o.pk for o in shipped]).update(status=OrderStatus.SHIPPED)
    recall = batch_recall(batch=batch, actor=first, reason=REASON)

    results = run_together(
        partial(recall_replacements_create, recall=recall, actor=first),
        partial(recall_replacements_create, recall=recall, actor=second),
    )

    assert sorted(len(made) for made in results) == [0, 3], results
    assert RecallReplacement.objects.filter(recall=recall).count() == 3
    replacements = Order.objects.filter(kind=OrderKind.REPLACEMENT)
    assert sorted(replacements.values_list("follows_id", flat=True)) == [o.pk for o in shipped]
