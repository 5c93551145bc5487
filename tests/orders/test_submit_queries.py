"""The queries of one new-order submit (the form's and the partner API's) and of one live dose
check, pinned: a query more per submit is a choice, not an accident. `python -m bench submit`
and `python -m bench dose_check` print the same counts, measured the same way.

Transactional, so that the submit runs as in production: its transaction is a real one (BEGIN
and COMMIT, the same on SQLite and PostgreSQL), not a savepoint inside the test's, and the
process keeps the catalogue it read (orders.checks.Catalogue.current)."""

import datetime
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AccessEvent
from orders.checks import Catalogue
from orders.models import Order, OrderEvent
from prescribers.api_keys import api_key_create
from prescribers.models import IdempotentRequest
from tests.api_clients import api_client
from tests.factories import (  # the form the submit benchmark sends too
    TEST_PASSWORD,
    TITRATION,
    PatientFactory,
    clinic_of,
    order_form,
    submit_order,
)
from tests.orders.test_api import ORDER
from tests.orders.test_dose_check import EXAMPLE as DOSE_CHECK

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def _json_support_known():
    """SQLite is asked once per connection whether it has JSON (a query of its own), by the
    first read that gathers rows as JSON; PostgreSQL has it."""
    assert connection.features.supports_json_field


# The sign-in (django_session), the user, the clinics the prescriber orders for, the patient
# with their open orders (duplicate therapy), the prescriber's licence in the patient's state;
# BEGIN, the prescription and its history row, its steps, its lines (the schedule's and a
# maintenance refill's, in one INSERT), the order and its history row, the order's event; COMMIT.
SUBMIT_QUERIES = 14
# The partner API's order, from a key that signs: the key; BEGIN, its Idempotency-Key's row
# (inserted unless there: it went in, so there is nothing to read); the patient with their open
# orders, the memberships, the licence; a savepoint around the same seven writes as the form's;
# the access event of the order shown; the answer kept on the key's row; COMMIT. The answer is
# made from what was written, not read back.
API_SUBMIT_QUERIES = 18


def test_one_submit_takes_a_pinned_number_of_queries(client, prescriber):
    # Two patients: a second identical order for one patient would be duplicate therapy.
    first_patient, patient = PatientFactory.create_batch(
        2, clinic=clinic_of(prescriber), created_by=prescriber.user,
        date_of_birth=datetime.date(1975, 3, 9), takes_opioids=False,
        current_medications="Vitamin D 1000 IU daily",
    )  # fmt: skip
    client.force_login(prescriber.user)
    Catalogue.forget()

    with CaptureQueriesContext(connection) as first:
        client.post(
            reverse("order_create", args=[first_patient.pk]),
            order_form(idempotency_key=str(uuid.uuid4())),
        )
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            reverse("order_create", args=[patient.pk]),
            order_form(idempotency_key=str(uuid.uuid4())),
        )

    # The first submit of a process reads the catalogue (its records and their excipients).
    assert len(first) == SUBMIT_QUERIES + 2
    order = Order.objects.latest("pk")
    assert order.prescription.patient == patient
    assert response.status_code == 302
    assert response["Location"] == reverse("order_detail", args=[order.pk])
    assert OrderEvent.objects.filter(order=order).count() == 1
    assert order.history.count() == 1
    statements = "\n".join(query["sql"] for query in queries.captured_queries)
    assert len(queries) == SUBMIT_QUERIES, statements


def test_one_order_by_the_api_takes_a_pinned_number_of_queries(prescriber):
    first_patient, patient = PatientFactory.create_batch(
        2, clinic=clinic_of(prescriber), created_by=prescriber.user,
        date_of_birth=datetime.date(1975, 3, 9), takes_opioids=False,
        current_medications="Vitamin D 1000 IU daily",
    )  # fmt: skip
    _, raw = api_key_create(
        clinic=clinic_of(prescriber), actor=prescriber.user, name="Clinic EHR", can_sign=True,
        password=TEST_PASSWORD,
    )  # fmt: skip
    api = api_client(raw)
    Catalogue.forget()

    def send(patient):
        return api.post(
            reverse("api-order-list"), {**ORDER, "patient_id": patient.pk}, format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )  # fmt: skip

    send(first_patient)  # reads the catalogue, and writes the key's last use
    with CaptureQueriesContext(connection) as queries:
        response = send(patient)

    order = Order.objects.latest("pk")
    assert response.status_code == 201
    assert response.json()["id"] == order.pk and order.prescription.patient == patient
    assert AccessEvent.objects.filter(object_id=str(order.pk)).count() == 1
    assert IdempotentRequest.objects.get(response__id=order.pk).status_code == 201
    statements = "\n".join(query["sql"] for query in queries.captured_queries)
    assert len(queries) == API_SUBMIT_QUERIES, statements


# The sign-in (django_session), the user, the clinics the prescriber orders for, the patient
# with their open orders, the prescriber's licence in the patient's state: the order form asks
# for a check at every pause in the prescriber's typing.
CHECK_QUERIES = 5


def test_one_dose_check_takes_a_pinned_number_of_queries(client, prescriber):
    patient = PatientFactory(
        clinic=clinic_of(prescriber), created_by=prescriber.user, takes_opioids=False
    )
    submit_order(prescriber, patient, TITRATION)  # an open order: a duplicate to warn of
    client.force_login(prescriber.user)
    Catalogue.forget()
    body = {k: v for k, v in DOSE_CHECK.items() if k != "patient"} | {"patient_id": patient.pk}

    def check():
        return client.post(reverse("dose_check"), body, content_type="application/json")

    check()  # the first of the process also reads the catalogue
    with CaptureQueriesContext(connection) as queries:
        response = check()

    assert response.status_code == 200
    assert "duplicate.open_order@patient.orders" in {f["key"] for f in response.json()["findings"]}
    statements = "\n".join(query["sql"] for query in queries.captured_queries)
    assert len(queries) == CHECK_QUERIES, statements
