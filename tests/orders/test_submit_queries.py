"""The queries of one new-order submit, pinned: a query more per submit is a choice, not an
accident. `python -m bench submit` prints the same count, measured the same way.

Transactional, so that the submit runs as in production: its transaction is a real one (BEGIN
and COMMIT, the same on SQLite and PostgreSQL), not a savepoint inside the test's, and the
process keeps the catalogue it read (orders.checks.Catalogue.current)."""

import datetime
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.checks import Catalogue
from orders.models import Order, OrderEvent
from tests.factories import PatientFactory, order_form  # the form the submit benchmark sends too

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# The sign-in (django_session), the user, the patient; BEGIN, the prescription and its history
# row, its steps, its lines, the order and its history row, the order's event; COMMIT.
SUBMIT_QUERIES = 12


def test_one_submit_takes_a_pinned_number_of_queries(client, prescriber):
    patient = PatientFactory(
        clinic=prescriber.clinic, created_by=prescriber.user,
        date_of_birth=datetime.date(1975, 3, 9), takes_opioids=False,
        current_medications="Vitamin D 1000 IU daily",
    )  # fmt: skip
    client.force_login(prescriber.user)
    url = reverse("order_create", args=[patient.pk])
    Catalogue.forget()

    with CaptureQueriesContext(connection) as first:
        client.post(url, order_form(idempotency_key=str(uuid.uuid4())))
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, order_form(idempotency_key=str(uuid.uuid4())))

    assert len(first) == SUBMIT_QUERIES + 1  # the first submit of a process reads the catalogue
    order = Order.objects.latest("pk")
    assert response.status_code == 302
    assert response["Location"] == reverse("order_detail", args=[order.pk])
    assert OrderEvent.objects.filter(order=order).count() == 1
    assert order.history.count() == 1
    statements = "\n".join(query["sql"] for query in queries.captured_queries)
    assert len(queries) == SUBMIT_QUERIES, statements
