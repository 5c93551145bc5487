"""Ordering under concurrency on PostgreSQL: locks and unique keys, not timing, decide."""

import datetime
import uuid
from decimal import Decimal

import pytest

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Order
from orders.services import RefillRefused, order_submit, prescription_refill
from tests.factories import PatientFactory, PrescriberFactory
from tests.integration.test_postgres_locks import run_together

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

REGIMEN = Regimen(
    dosage_form=DosageForm.CAPSULE,
    steps=(Step(dose_mg=Decimal("1.5"), days=30),),
    doses_per_day=1, quantity=Decimal("30"), days_supply=30, refills=1,
)  # fmt: skip


def submit(prescriber, patient, key):
    return order_submit(
        actor=prescriber.user, patient=patient, regimen=REGIMEN, diagnosis_codes=["M79.7"],
        reason_for_compounding="Strength not available", ship_to="clinic", needed_by=None,
        acknowledged=[], idempotency_key=key,
    )  # fmt: skip


@pytest.fixture
def prescriber_and_patient(postgresql):
    prescriber = PrescriberFactory()
    patient = PatientFactory(
        clinic=prescriber.clinic, takes_opioids=False, current_medications="",
        date_of_birth=datetime.date(1970, 1, 1),
    )  # fmt: skip
    return prescriber, patient


def test_the_same_form_submitted_twice_at_once_makes_one_order(prescriber_and_patient):
    prescriber, patient = prescriber_and_patient
    key = uuid.uuid4()

    results = run_together(*[lambda: submit(prescriber, patient, key)] * 3)

    assert [type(r) for r in results] == [Order] * 3, results
    assert len({r.pk for r in results}) == 1
    assert Order.objects.count() == 1


def test_two_refills_at_once_take_the_last_refill_once(prescriber_and_patient):
    prescriber, patient = prescriber_and_patient
    first = submit(prescriber, patient, uuid.uuid4())

    def refill():
        return prescription_refill(
            prescription=first.prescription, actor=prescriber.user, ship_to="clinic",
            needed_by=None, idempotency_key=uuid.uuid4(),
        )  # fmt: skip

    results = run_together(refill, refill)

    refused = [r for r in results if isinstance(r, RefillRefused)]
    assert len(refused) == 1, results
    assert Order.objects.filter(kind="refill").count() == 1
