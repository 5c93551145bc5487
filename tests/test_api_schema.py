"""The partner API against its own served OpenAPI schema (schemathesis): every operation gets
generated requests with a valid key of the clinic, and every answer must be no server error, a
documented status code and content type, and a body that matches the schema; requests the schema
calls invalid, without the key or without a required header must be refused. Every check of
schemathesis runs but one: "a request the schema allows is accepted". The rules of a prescription
reach across fields (a concentration for all but capsules, a patient id or a patient's facts) and
into the patient's record, which a schema does not say; the rules answer those with a 400 or a
422 that names the field, as documented.

Marked `postgresql`: it runs on SQLite with the unit tests and on PostgreSQL (which refuses a NUL
in text and out-of-range integers that SQLite stores) in the PostgreSQL suite."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from prescribers.api_keys import api_key_create
from tests.factories import TEST_PASSWORD, PatientFactory, clinic_of

pytestmark = [pytest.mark.postgresql, pytest.mark.django_db]

# Loaded from the address the portal serves it on, through the portal's own WSGI application.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
EXAMPLES = 25


@pytest.fixture
def connection_kept():
    """As Django's test client does: the test's transaction stays open across the requests
    (Django closes the connection at the end of a request otherwise)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def key_header(prescriber, settings, connection_kept):
    """A key of the clinic that signs (so orders go through every rule to the pharmacy), its
    rate limit lifted for the generated requests, and a patient to order for."""
    settings.API_RATE_LIMIT = "100000/minute"
    PatientFactory(clinic=clinic_of(prescriber), created_by=prescriber.user)
    _, raw = api_key_create(
        clinic=clinic_of(prescriber), actor=prescriber.user, name="Schema test", can_sign=True,
        password=TEST_PASSWORD,
    )  # fmt: skip
    return {"Authorization": f"Api-Key {raw}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much],
)  # fmt: skip
def test_every_operation_answers_as_its_schema_says(case, key_header):
    case.call_and_validate(headers=key_header, excluded_checks=[positive_data_acceptance])
