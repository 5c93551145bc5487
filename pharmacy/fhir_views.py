"""The FHIR R4 search of the pharmacy's records: what was dispensed for an order, as
MedicationDispense resources (pharmacy/fhir.py), for the key's clinic.

An order of another clinic, or no order at all, finds nothing: a search answers with the
matches the client may see, and an empty searchset says no more than a 404 would, without
telling one clinic which order numbers exist at another."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from fhir.resources.R4B.bundle import Bundle
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.api import KnownQueryParameters
from core.audit import record_access
from core.fhir_api import FhirView
from core.models import AccessAction
from orders.fhir_views import clinic_order

from .fhir import medication_dispense_resources

REQUEST_TYPE = "MedicationRequest/"


@extend_schema(exclude=True)
class MedicationDispenseSearchView(KnownQueryParameters, FhirView):
    """GET MedicationDispense?prescription=MedicationRequest/<order number> (or the number
    alone): a searchset Bundle of the order's dispenses, oldest first."""

    def query_parameters(self) -> set[str]:
        return {"prescription"}

    def get(self, request):
        number = self._order_number(request)
        order = clinic_order(request, number, "prescription")
        resources = medication_dispense_resources(order) if order is not None else []
        base = request.build_absolute_uri(reverse("fhir-metadata")).removesuffix("metadata")
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources),
            "link": [{"relation": "self", "url": request.build_absolute_uri()}],
            "entry": [
                {
                    "fullUrl": f"{base}MedicationDispense/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                for resource in resources
            ],
        }
        bundle = Bundle.model_validate(bundle).model_dump(mode="json")
        if order is not None:
            record_access(request, AccessAction.VIEWED_ORDER, order)
        return Response(bundle)

    def _order_number(self, request) -> str:
        """The order number of the one reference searched for."""
        values = request.query_params.getlist("prescription")
        if len(values) != 1:
            message = f"Send one: {REQUEST_TYPE}<order number>, or the number."
            code = "invalid" if values else "required"
            raise ValidationError({"prescription": message}, code=code)
        reference = values[0].strip()
        base = request.build_absolute_uri(reverse("fhir-metadata")).removesuffix("metadata")
        number = reference.removeprefix(base).removeprefix(REQUEST_TYPE)
        if not number or "/" in number or "," in number:
            message = f"Send a reference to one MedicationRequest: {REQUEST_TYPE}<order number>."
            raise ValidationError({"prescription": message})
        return number
