"""An order's dispenses as FHIR R4B MedicationDispense resources, for the partner API.

The dispenses are the pharmacy's records, so they are shown here; the MedicationRequest they
fill is the order's (orders.fhir.medication_request_resource, whose id is the order number). A
dispense refers to the patient only by id: no name, birth date or address.
"""

from fhir.resources.R4B.medicationdispense import MedicationDispense

from orders.dosing import DosageForm
from orders.fhir import MEDICATION_ID, contained_medication, units_quantity
from orders.models import Order

from .models import Dispense


def medication_dispense_resources(order: Order) -> list[dict]:
    """One R4B MedicationDispense (as JSON) per dispense of the order, oldest first: the units
    of one batch, its lot and beyond-use date. One query for all of them (and one for the
    order's prescription when it is not loaded yet)."""
    # No selector reads an order's dispenses with their batches and products; the pharmacy owns
    # these rows, so the query is here.
    dispenses = (
        Dispense.objects.filter(order_id=order.pk)
        .select_related("batch", "line__formulation")
        .order_by("pk")
    )
    patient_id = order.prescription.patient_id
    return [_dispense_resource(dispense, order, patient_id) for dispense in dispenses]


def _dispense_resource(dispense: Dispense, order: Order, patient_id: int) -> dict:
    formulation, batch = dispense.line.formulation, dispense.batch
    medication = contained_medication(
        formulation.dosage_form,
        name=formulation.name,
        strength_mg=formulation.strength_mg,
        concentration_mg_per_ml=formulation.concentration_mg_per_ml,
        lot_number=batch.lot_number,
        beyond_use_date=batch.beyond_use_date,
    )
    resource = {
        "resourceType": "MedicationDispense",
        "id": f"{order.number}-{dispense.pk}",
        "contained": [medication],
        "status": "completed",
        "medicationReference": {"reference": f"#{MEDICATION_ID}"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "authorizingPrescription": [{"reference": f"MedicationRequest/{order.number}"}],
        "quantity": units_quantity(dispense.units, DosageForm(formulation.dosage_form)),
        # When the units left the shelf for this order (the dispense row's time).
        "whenHandedOver": dispense.dispensed_at.isoformat(),
    }
    return MedicationDispense.model_validate(resource).model_dump(mode="json")
