"""An order the pharmacy has dispensed, for the pharmacy's tests of what it gave (FHIR)."""

import datetime
from decimal import Decimal

import pytest

from orders.models import Formulation, Order, OrderStatus
from pharmacy.dispensing import dispense_allocate
from tests.factories import TWO_STRENGTHS, BatchFactory, FormulationVersionFactory, submit_order


def capsule(strength: str) -> Formulation:
    return Formulation.objects.get(dosage_form="capsule", strength_mg=Decimal(strength))


@pytest.fixture
def dispensed_order(prescriber, patient, technician, clock) -> Order:
    """A verified order of two strengths, dispensed from one batch of each."""
    order = submit_order(prescriber, patient, TWO_STRENGTHS)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.VERIFIED)
    for strength, lot in (("1.5", "LDN-15-0301"), ("3", "LDN-30-0301")):
        BatchFactory(
            lot_number=lot,
            formulation_version=FormulationVersionFactory(formulation=capsule(strength)),
            compounded_on=datetime.date(2026, 2, 20),
            beyond_use_date=datetime.date(2026, 8, 19),
        )
    dispense_allocate(order=order, actor=technician)
    return Order.objects.select_related("prescription").get(pk=order.pk)
