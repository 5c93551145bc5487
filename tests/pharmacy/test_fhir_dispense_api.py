"""The FHIR search of an order's dispenses, as a clinic's EHR uses it: the exact searchset of
the order's MedicationDispense resources for a key of the order's clinic, an empty one for any
other order (another clinic's finds nothing, as no order does), and an OperationOutcome for a
search without its one `prescription` reference."""

import pytest
from django.urls import reverse

from core.models import AccessAction, AccessEvent
from prescribers.api_keys import api_key_create
from tests.api_clients import api_client
from tests.factories import TWO_STRENGTHS, clinic_of, submit_order
from tests.pharmacy.test_fhir_dispense import dispense_of

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"
BASE = "http://testserver/fhir/r4/"


def key_client(prescriber):
    """A client with a key of the prescriber's clinic."""
    _, raw = api_key_create(clinic=clinic_of(prescriber), actor=prescriber.user, name="EHR")
    return api_client(raw)


@pytest.fixture
def api(prescriber):
    return key_client(prescriber)


def search(api, query: str):
    return api.get(f"{reverse('fhir-medication-dispense')}?{query}")


def fhir(response) -> dict:
    assert response["Content-Type"] == FHIR_JSON
    return response.json()


def searchset(query: str, resources: list[dict]) -> dict:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": f"{BASE}MedicationDispense?{query}"}],
    }
    if resources:
        bundle["entry"] = [
            {
                "fullUrl": f"{BASE}MedicationDispense/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ]
    return bundle


def outcome_of(code: str, text: str) -> dict:
    issue = {"severity": "error", "code": code, "details": {"text": text}}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


@pytest.mark.parametrize(
    "reference",
    ["MedicationRequest/{number}", "{number}", f"{BASE}MedicationRequest/{{number}}"],
)
def test_the_orders_dispenses_are_found_by_its_medication_request(
    api, dispensed_order, patient, reference
):
    query = f"prescription={reference.format(number=dispensed_order.number)}"

    response = search(api, query)

    assert response.status_code == 200
    assert fhir(response) == searchset(
        query,
        [
            dispense_of("LDN-15-0301", 1.5, 14, dispensed_order, patient),
            dispense_of("LDN-30-0301", 3, 30, dispensed_order, patient),
        ],
    )
    event = AccessEvent.objects.get()
    assert (event.action, event.object_id) == (AccessAction.VIEWED_ORDER, dispensed_order.pk)


def test_an_order_not_dispensed_yet_finds_nothing(api, prescriber, patient):
    order = submit_order(prescriber, patient, TWO_STRENGTHS)
    query = f"prescription=MedicationRequest/{order.number}"

    response = search(api, query)

    assert response.status_code == 200
    assert fhir(response) == searchset(query, [])


@pytest.mark.parametrize("number", ["theirs", "LDN-999999", "1"])
def test_another_clinics_order_or_no_order_finds_nothing(dispensed_order, other_prescriber, number):
    theirs = key_client(other_prescriber)
    number = dispensed_order.number if number == "theirs" else number
    query = f"prescription=MedicationRequest/{number}"

    response = search(theirs, query)

    assert response.status_code == 200
    assert fhir(response) == searchset(query, [])
    assert not AccessEvent.objects.exists()


@pytest.mark.parametrize(
    ("query", "code", "text"),
    [
        (
            "",
            "required",
            "prescription: Send one: MedicationRequest/<order number>, or the number.",
        ),
        (
            "prescription=LDN-000001&prescription=LDN-000002",
            "invalid",
            "prescription: Send one: MedicationRequest/<order number>, or the number.",
        ),
        (
            "prescription=Patient/1",
            "invalid",
            "prescription: Send a reference to one MedicationRequest: MedicationRequest/"
            "<order number>.",
        ),
        (
            "prescription=MedicationRequest/",
            "invalid",
            "prescription: Send a reference to one MedicationRequest: MedicationRequest/"
            "<order number>.",
        ),
        ("prescription=", "invalid", "prescription: Send a value, or leave the parameter out."),
        (
            "prescription=LDN-000001&patient=Patient/1",
            "invalid",
            "patient: This operation takes no such parameter.",
        ),
    ],
)
def test_a_search_without_one_prescription_reference_is_400(api, query, code, text):
    response = search(api, query)

    assert response.status_code == 400
    assert fhir(response) == outcome_of(code, text)


def test_without_a_key_the_search_is_401(dispensed_order):
    response = search(api_client(None), f"prescription={dispensed_order.number}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'
    assert fhir(response) == outcome_of("login", "Authentication credentials were not provided.")
    assert not AccessEvent.objects.exists()
