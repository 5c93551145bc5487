"""The partner API's keys for the orders app's tests: a key of the prescriber's clinic that
drafts (`api`) and one that signs (`signing_api`), each as a client."""

import pytest

from prescribers.api_keys import api_key_create
from tests.api_clients import api_client
from tests.factories import TEST_PASSWORD, clinic_of


@pytest.fixture
def key(prescriber):
    return api_key_create(clinic=clinic_of(prescriber), actor=prescriber.user, name="Clinic EHR")


@pytest.fixture
def api(key):
    return api_client(key[1])


@pytest.fixture
def signing_api(prescriber):
    _, raw = api_key_create(
        clinic=clinic_of(prescriber), actor=prescriber.user, name="Signing EHR", can_sign=True,
        password=TEST_PASSWORD,
    )  # fmt: skip
    return api_client(raw)
