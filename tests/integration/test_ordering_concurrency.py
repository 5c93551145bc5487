"""Ordering under concurrency on PostgreSQL: locks and unique keys, not timing, decide."""

import datetime
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from orders.dosing import DosageForm, Regimen, Step
from orders.models import Order
from orders.services import RefillRefused, prescription_refill
from prescribers.api_keys import api_key_create
from prescribers.models import IdempotentRequest
from tests.api_clients import api_client
from tests.factories import (
    TEST_PASSWORD,
    PatientFactory,
    PrescriberFactory,
    clinic_of,
    submit_order,
)
from tests.integration.test_postgres_locks import run_together
from tests.orders.test_api import ORDER

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
    return submit_order(prescriber, patient, REGIMEN, idempotency_key=key)


@pytest.fixture
def prescriber_and_patient(postgresql):
    prescriber = PrescriberFactory()
    patient = PatientFactory(
        clinic=clinic_of(prescriber), takes_opioids=False, current_medications="",
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


def api_order_sender(prescriber, patient):
    """Sends the partner API's new order for the patient, with an Idempotency-Key, from a key
    of the prescriber's clinic that signs."""
    _, raw = api_key_create(
        clinic=clinic_of(prescriber), actor=prescriber.user, name="Clinic EHR", can_sign=True,
        password=TEST_PASSWORD,
    )  # fmt: skip

    def send(idempotency_key: str, **changes):
        body = {**ORDER, "patient_id": patient.pk, **changes}
        return api_client(raw).post(
            reverse("api-order-list"), body, format="json", HTTP_IDEMPOTENCY_KEY=idempotency_key
        )

    return send


def test_the_same_api_order_sent_three_times_at_once_is_made_once(prescriber_and_patient):
    send = api_order_sender(*prescriber_and_patient)

    answers = run_together(*[lambda: send("retry-me")] * 3)

    assert [a.status_code for a in answers] == [201] * 3, answers
    first = [a for a in answers if "Idempotent-Replayed" not in a]
    assert len(first) == 1
    for answer in answers:
        assert answer.json() == first[0].json() and answer["Location"] == first[0]["Location"]
    order = Order.objects.get()
    assert first[0].json()["id"] == order.pk
    assert list(IdempotentRequest.objects.values_list("key", "status_code")) == [("retry-me", 201)]


def test_another_order_with_the_same_key_at_once_is_refused_whichever_comes_first(
    prescriber_and_patient,
):
    send = api_order_sender(*prescriber_and_patient)

    answers = run_together(lambda: send("one-key"), lambda: send("one-key", refills=1))

    assert sorted(a.status_code for a in answers) == [201, 422], answers
    made = next(a for a in answers if a.status_code == 201)
    assert Order.objects.get().pk == made.json()["id"]
    refused = next(a for a in answers if a.status_code == 422)
    assert refused.json()["type"].endswith("/problems/idempotency-key-reused/")
    assert IdempotentRequest.objects.get().status_code == 201


def test_a_refused_order_and_its_correction_with_the_same_key_at_once_make_the_correction(
    prescriber_and_patient,
):
    # Refused first: its row is rolled back, and the correction's insert goes in (after waiting
    # for it, if it still ran). The correction first: the refused one meets the kept answer of
    # another request.
    prescriber, patient = prescriber_and_patient
    send = api_order_sender(prescriber, patient)

    refused, made = run_together(
        lambda: send("fix-me", patient_id=patient.pk + 1), lambda: send("fix-me")
    )

    assert made.status_code == 201 and "Idempotent-Replayed" not in made, made.json()
    assert Order.objects.get().pk == made.json()["id"]
    assert (refused.status_code, refused.json()["type"].rsplit("/", 2)[-2]) in {
        (400, "invalid-input"),
        (422, "idempotency-key-reused"),
    }, refused.json()
    assert list(IdempotentRequest.objects.values_list("key", "status_code")) == [("fix-me", 201)]


def refill_of(prescriber, order):
    """A refill request, right after the first fill: confirmed as early, with a reason."""
    return lambda: prescription_refill(
        prescription=order.prescription,
        actor=prescriber.user,
        ship_to="clinic",
        needed_by=None,
        idempotency_key=uuid.uuid4(),
        acknowledged=["refill.too_soon@refill"],
        reason="The patient travels.",
    )


def test_two_refills_at_once_take_the_last_refill_once(prescriber_and_patient):
    prescriber, patient = prescriber_and_patient
    first = submit(prescriber, patient, uuid.uuid4())

    results = run_together(refill_of(prescriber, first), refill_of(prescriber, first))

    refused = [r for r in results if isinstance(r, RefillRefused)]
    assert len(refused) == 1, results
    assert Order.objects.filter(kind="refill").count() == 1


def test_one_refill_is_open_at_a_time_however_many_are_asked_for_at_once(
    prescriber_and_patient,
):
    prescriber, patient = prescriber_and_patient
    first = submit_order(prescriber, patient, replace(REGIMEN, refills=5))

    results = run_together(*[refill_of(prescriber, first)] * 4)

    made = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, RefillRefused)]
    assert (len(made), len(refused)) == (1, 3), results
    for refusal in refused:
        assert [f.code for f in refusal.errors] == ["refill.already_open"]
        assert str(refusal) == (
            f"Refill {made[0].number} of this prescription is still open: one refill at a time."
        )
    assert list(Order.objects.filter(kind="refill").values_list("pk", flat=True)) == [made[0].pk]


def test_the_database_refuses_a_second_open_refill_written_past_the_service(
    prescriber_and_patient,
):
    prescriber, patient = prescriber_and_patient
    first = submit_order(prescriber, patient, replace(REGIMEN, refills=5))
    refill_of(prescriber, first)()

    second = Order(
        prescription=first.prescription,
        clinic=first.clinic,
        kind="refill",
        fill_number=9,
        ship_to="clinic",
        created_by=prescriber.user,
        status="in_review",
    )
    with (
        pytest.raises(IntegrityError, match="one_open_refill_per_prescription"),
        transaction.atomic(),
    ):
        second.save()
    assert Order.objects.filter(kind="refill").count() == 1
