"""An order's dispenses as FHIR R4B MedicationDispense resources (pharmacy/fhir.py): one per
dispense, exact, valid R4B, pointing at the order's MedicationRequest, never naming the patient."""

import json

import pytest
from fhir.resources.R4B.medicationdispense import MedicationDispense

from orders.fhir import medication_request_resource
from orders.models import Order
from pharmacy.fhir import medication_dispense_resources
from pharmacy.models import Dispense
from tests.factories import TWO_STRENGTHS, submit_order

pytestmark = pytest.mark.django_db

PORTAL = "https://ldn-portal.example/fhir"
UCUM = "http://unitsofmeasure.org"


def dispense_of(lot: str, strength: float, units: int, order: Order, patient) -> dict:
    dispense = Dispense.objects.get(order=order, batch__lot_number=lot)
    return {
        "resourceType": "MedicationDispense",
        "id": f"{order.number}-{dispense.pk}",
        "contained": [
            {
                "resourceType": "Medication",
                "id": "naltrexone",
                "code": {"text": f"Naltrexone HCl {strength:g} mg capsule"},
                "form": {
                    "coding": [
                        {
                            "system": f"{PORTAL}/CodeSystem/dosage-form",
                            "code": "capsule",
                            "display": "Capsule",
                        },
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                            "code": "CAP",
                        },
                    ],
                    "text": "Capsule",
                },
                "ingredient": [
                    {
                        "itemCodeableConcept": {"text": "Naltrexone hydrochloride"},
                        "isActive": True,
                        "strength": {
                            "numerator": {
                                "value": strength,
                                "unit": "mg",
                                "system": UCUM,
                                "code": "mg",
                            },
                            "denominator": {
                                "value": 1,
                                "unit": "capsule",
                                "system": UCUM,
                                "code": "{capsule}",
                            },
                        },
                    }
                ],
                "batch": {"lotNumber": lot, "expirationDate": "2026-08-19"},
            }
        ],
        "status": "completed",
        "medicationReference": {"reference": "#naltrexone"},
        "subject": {"reference": f"Patient/{patient.pk}"},
        "authorizingPrescription": [{"reference": f"MedicationRequest/{order.number}"}],
        "quantity": {"value": units, "unit": "capsules", "system": UCUM, "code": "{capsule}"},
        "whenHandedOver": "2026-03-02T14:00:00Z",
    }


def test_each_dispense_is_an_exact_valid_medication_dispense(
    dispensed_order, patient, django_assert_num_queries
):
    with django_assert_num_queries(1):
        resources = medication_dispense_resources(dispensed_order)

    assert resources == [
        dispense_of("LDN-15-0301", 1.5, 14, dispensed_order, patient),
        dispense_of("LDN-30-0301", 3, 30, dispensed_order, patient),
    ]
    for resource in resources:
        assert MedicationDispense.model_validate(resource).model_dump(mode="json") == resource


def test_the_dispenses_are_authorized_by_the_orders_medication_request(dispensed_order):
    request = medication_request_resource(dispensed_order)

    for resource in medication_dispense_resources(dispensed_order):
        assert resource["authorizingPrescription"] == [
            {"reference": f"MedicationRequest/{request['id']}"}
        ]


def test_the_dispenses_never_name_the_patient(dispensed_order, patient):
    text = json.dumps(medication_dispense_resources(dispensed_order))

    for personal in (
        patient.first_name,
        patient.last_name,
        patient.date_of_birth.isoformat(),
        patient.address_line1,
        patient.postal_code,
        str(patient.phone),
    ):
        assert personal not in text


def test_an_order_not_dispensed_yet_has_no_dispenses(prescriber, patient):
    order = submit_order(prescriber, patient, TWO_STRENGTHS)

    assert medication_dispense_resources(order) == []
