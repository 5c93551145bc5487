"""The FHIR R4 endpoints of the orders app, on the partner API's keys: a clinic's EHR orders LDN
with a transaction Bundle, reads an order as a MedicationRequest, and reads what the server
does in its CapabilityStatement. The same services and dose rules as the portal and the JSON
API (orders/api.py): an order sent with a key that does not sign is a draft for the
Practitioner, a prescriber of the key's clinic, to sign in the portal.

The mapping itself is orders/fhir.py; these views find the clinic's records, call the services
and answer in FHIR (core/fhir_api.py: errors are OperationOutcomes)."""

import datetime
import re

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core.api import KnownQueryParameters
from core.audit import record_access
from core.fhir_api import FhirProblem, FhirView
from core.models import AccessAction
from core.problems import field_errors
from prescribers.api_auth import IDEMPOTENCY_HEADER, idempotent
from prescribers.selectors import clinic_prescribers

from .api import order_key, signing_of
from .checks import REASON_REQUIRED, Catalogue, check_new_prescription
from .fhir import (
    ACKNOWLEDGED_WARNING_URL,
    ACKNOWLEDGEMENT_REASON_URL,
    LIVER_DISEASE_URL,
    NPI_SYSTEM,
    PREGNANT_OR_BREASTFEEDING_URL,
    TAKES_OPIOIDS_URL,
    FhirInputError,
    FhirOrder,
    FhirPaths,
    Issue,
    finding_expression,
    medication_request_resource,
    operation_outcome,
    parse_bundle,
)
from .medications import Group, mentions
from .models import Order, Patient
from .serializers import PatientSerializer
from .services import PrescriptionNotAccepted, order_submit, patient_create

FHIR_VERSION = "4.0.1"
# When the CapabilityStatement last changed: change it with the interactions it lists.
CAPABILITIES_CHANGED_ON = datetime.date(2026, 12, 5)

CREATED, OK = "201 Created", "200 OK"
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
MAX_TEXT_ISSUES = 10
# The patient's yes/no answers the dose rules read (contraindications, the label's warnings).
SAFETY_ANSWERS = (
    ("takes_opioids", TAKES_OPIOIDS_URL, "takes an opioid"),
    ("pregnant_or_breastfeeding", PREGNANT_OR_BREASTFEEDING_URL, "is pregnant or breastfeeding"),
    ("liver_disease", LIVER_DISEASE_URL, "has liver disease"),
)


def _error(code: str, expression: str, message: str) -> Issue:
    return Issue("error", code, expression, message)


# --- The transaction Bundle -----------------------------------------------------------------------


def _entries(data: dict) -> list[dict]:
    """The Bundle's entries (parse_bundle accepted it: each holds a resource)."""
    return [entry for entry in data.get("entry") or () if isinstance(entry, dict)]


def _resource_type(entry: dict) -> str:
    resource = entry.get("resource")
    return resource.get("resourceType", "") if isinstance(resource, dict) else ""


def _unstorable_text(data) -> list[Issue]:
    """The strings FHIR does not allow and the database cannot store: a control character
    other than tab, CR and LF (FHIR R4 Datatypes, string; PostgreSQL refuses NUL in any text),
    or half of a UTF-16 surrogate pair (a JSON escape; not UTF-8). The first few, by FHIRPath."""
    issues, stack = [], [("Bundle", data)]
    while stack and len(issues) < MAX_TEXT_ISSUES:
        path, value = stack.pop()
        if isinstance(value, dict):
            items = [(f"{path}.{k}", v) for k, v in value.items() if not _unstorable(k)]
            stack.extend(reversed(items))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
        elif isinstance(value, str) and _unstorable(value):
            message = "Send valid Unicode text, without control characters (tab, CR, LF aside)."
            issues.append(_error("invalid", path, message))
    return issues


def _unstorable(text: str) -> bool:
    if CONTROL_CHARACTERS.search(text):
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _npi_expression(data: dict, npi: str) -> str:
    """Where the Practitioner's NPI is in the Bundle."""
    for index, entry in enumerate(data.get("entry") or ()):
        if isinstance(entry, dict) and _resource_type(entry) == "Practitioner":
            at = f"Bundle.entry[{index}].resource.identifier"
            for position, identifier in enumerate(entry["resource"].get("identifier") or ()):
                if (
                    isinstance(identifier, dict)
                    and identifier.get("system") == NPI_SYSTEM
                    and str(identifier.get("value", "")).strip() == npi
                ):
                    return f"{at}[{position}]"
            return at
    return "Practitioner.identifier"


def _patient_issues(errors: dict, paths: FhirPaths) -> list[Issue]:
    """The patient form's refusals (PatientSerializer, the model's checks), each pointing at
    the element of the Bundle's Patient (or its AllergyIntolerance, MedicationStatement,
    Condition entries) that holds the field."""
    issues = []
    for error in field_errors(errors):
        name = error["field"].split(".")[0]
        expression = finding_expression(f"patient.{name}" if name else "patient", paths)
        code = "required" if error["code"] == "required" else "invalid"
        issues.append(_error(code, expression, error["detail"]))
    return issues


def _record_differs(patient: Patient, sent, paths: FhirPaths) -> list[Issue]:
    """What the Bundle says about the patient's safety (opioids, pregnancy, liver disease) that
    the clinic's record does not: the dose rules read the record, so a contraindication known
    only to the EHR would not be checked. Such an order waits until the record says it too."""
    issues = []
    where = f"the clinic's record of this patient (Patient/{patient.pk})"
    update = "Update the record (portal, or the API's patients) and send the Bundle again."
    for field_name, url, what in SAFETY_ANSWERS:
        if getattr(sent, field_name) and not getattr(patient, field_name):
            expression = f"{paths.patient}.extension('{url}')"
            message = f"The Bundle says the patient {what}; {where} does not. {update}"
            issues.append(_error("conflict", expression, message))
    recorded = {m.drug for m in mentions(patient.current_medications, Group.OPIOID)}
    unrecorded = [
        m.written
        for m in mentions(sent.current_medications, Group.OPIOID)
        if m.drug not in recorded
    ]
    if unrecorded:
        expression = finding_expression("patient.current_medications", paths)
        message = f"The Bundle names opioids ({', '.join(unrecorded)}) that {where} does not. "
        issues.append(_error("conflict", expression, message + update))
    return issues


def _refusal(refused: PrescriptionNotAccepted, paths: FhirPaths) -> dict:
    """What the rules found, and how to acknowledge each warning that was not."""
    expression = finding_expression("acknowledged_warnings", paths)
    issues = []
    for warning in refused.unacknowledged:
        message = (
            f"The warning {warning.code} is not acknowledged: after review, send the "
            f"extension {ACKNOWLEDGED_WARNING_URL} with valueCode {warning.code} on the "
            "MedicationRequest"
        )
        if warning.code in REASON_REQUIRED:
            message += f", and the reason in the extension {ACKNOWLEDGEMENT_REASON_URL}"
        issues.append(_error("business-rule", expression, message + "."))
    return operation_outcome(findings=refused.findings, issues=issues, paths=paths)


def _reused_patient_id(bundle: dict) -> int | None:
    """The existing patient a transaction-response names (a replayed answer)."""
    for entry in bundle.get("entry") or ():
        answer = entry.get("response") or {}
        location = answer.get("location", "")
        if answer.get("status") == OK and location.startswith("Patient/"):
            return int(location.removeprefix("Patient/"))
    return None


@extend_schema(exclude=True)
class BundleView(KnownQueryParameters, FhirView):
    """POST a transaction Bundle: the patient (found in the clinic by name and date of birth, or
    added), the prescriber (by NPI, of the key's clinic), the order. A retry with the same
    Idempotency-Key gets the first answer."""

    def post(self, request):
        self.reused_patient = None
        try:
            response = idempotent(request, lambda: self._transaction(request))
        finally:
            # Orders for a patient already on record show that record (the rules' findings):
            # an access event, also when the rules refused (the refusal's rollback is over).
            if self.reused_patient is not None:
                record_access(request, AccessAction.VIEWED_PATIENT, self.reused_patient)
        if response.headers.get("Idempotent-Replayed"):
            patient_id = _reused_patient_id(response.data)
            if patient_id is not None:
                record_access(request, AccessAction.VIEWED_PATIENT, Patient(pk=patient_id))
        return response

    def _transaction(self, request) -> Response:
        data = request.data
        issues = _unstorable_text(data)
        try:
            fhir_order = parse_bundle(data)
        except FhirInputError as refused:
            seen = {issue.expression for issue in issues}
            issues += [issue for issue in refused.issues if issue.expression not in seen]
            outcome = operation_outcome(issues=issues)
            raise FhirProblem(outcome, status_code=status.HTTP_400_BAD_REQUEST) from refused
        if issues:
            outcome = operation_outcome(issues=issues)
            raise FhirProblem(outcome, status_code=status.HTTP_400_BAD_REQUEST)
        key, clinic_id = request.auth, request.auth.clinic_id
        prescriber = clinic_prescribers(clinic_id).filter(npi=fhir_order.npi).first()
        if prescriber is None:
            message = "No approved prescriber of the key's clinic has this NPI."
            issue = _error("business-rule", _npi_expression(data, fhir_order.npi), message)
            outcome = operation_outcome(issues=[issue])
            raise FhirProblem(outcome, status_code=status.HTTP_422_UNPROCESSABLE_ENTITY)
        patient, created = self._patient(request, fhir_order)
        signer, draft = signing_of(key, prescriber.pk, clinic_id)
        catalogue = Catalogue.load()
        diagnosis_codes = list(fhir_order.diagnosis_codes)
        # The rules run first to know the warnings: those the prescriber acknowledged (by
        # code, in the Bundle) are confirmed by their keys, as the order form's ticks are.
        check = check_new_prescription(
            patient=patient,
            prescriber=signer,
            regimen=fhir_order.regimen,
            diagnosis_codes=diagnosis_codes,
            catalogue=catalogue,
        )
        try:
            order = order_submit(
                actor=request.user,
                patient=patient,
                regimen=fhir_order.regimen,
                diagnosis_codes=diagnosis_codes,
                reason_for_compounding=fhir_order.reason_for_compounding,
                ship_to=fhir_order.ship_to,
                needed_by=None,
                acknowledged=fhir_order.acknowledged_keys(check.findings),
                reason=fhir_order.acknowledgement_reason,
                signer=signer,
                draft=draft,
                via=f"FHIR with API key {key}",
                idempotency_key=order_key(request),
                catalogue=catalogue,
            )
        except PrescriptionNotAccepted as refused:
            outcome = _refusal(refused, fhir_order.paths)
            raise FhirProblem(
                outcome, status_code=status.HTTP_422_UNPROCESSABLE_ENTITY
            ) from refused
        answers = {
            "Patient": {"status": CREATED if created else OK, "location": f"Patient/{patient.pk}"},
            "Practitioner": {"status": OK, "location": f"Practitioner/{prescriber.pk}"},
            "MedicationRequest": {
                "status": CREATED,
                "location": f"MedicationRequest/{order.number}",
                "outcome": operation_outcome(findings=check.findings, paths=fhir_order.paths),
            },
        }
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {"response": answers.get(_resource_type(entry), {"status": OK})}
                for entry in _entries(data)
            ],
        }
        bundle = Bundle.model_validate(bundle).model_dump(mode="json")
        location = request.build_absolute_uri(
            reverse("fhir-medication-request", args=[order.number])
        )
        return Response(bundle, status=status.HTTP_201_CREATED, headers={"Location": location})

    def _patient(self, request, fhir_order: FhirOrder) -> tuple[Patient, bool]:
        """The clinic's patient of this name and date of birth, used as recorded; else a new
        one, through the checks of the patient form (as the JSON API adds one)."""
        sent, clinic_id = fhir_order.patient, request.auth.clinic_id
        namesakes = Patient.objects.likely_duplicates(
            clinic_id=clinic_id,
            first_name=sent.first_name,
            last_name=sent.last_name,
            date_of_birth=sent.date_of_birth,
        )
        existing = namesakes.order_by("pk").first()
        if existing is not None:
            self.reused_patient = existing
            issues = _record_differs(existing, sent, fhir_order.paths)
            if issues:
                outcome = operation_outcome(issues=issues)
                raise FhirProblem(outcome, status_code=status.HTTP_409_CONFLICT)
            return existing, False
        fields = sent.editable_fields()
        fields["date_of_birth"] = fields["date_of_birth"].isoformat()
        form = PatientSerializer(data=fields, context={"clinic_id": clinic_id})
        if not form.is_valid():
            outcome = operation_outcome(issues=_patient_issues(form.errors, fhir_order.paths))
            raise FhirProblem(outcome, status_code=status.HTTP_400_BAD_REQUEST)
        try:
            patient = patient_create(
                clinic=request.auth.clinic, actor=request.user, **form.validated_data
            )
        except DjangoValidationError as refused:
            errors = refused.message_dict if hasattr(refused, "error_dict") else refused.messages
            outcome = operation_outcome(issues=_patient_issues(errors, fhir_order.paths))
            raise FhirProblem(outcome, status_code=status.HTTP_400_BAD_REQUEST) from refused
        return patient, True


# --- Reading an order -----------------------------------------------------------------------------


def clinic_order(request, number: str, *related: str) -> Order | None:
    """The order of the key's clinic with this number (its FHIR id, as written: LDN-000123)."""
    pk = Order.pk_from_number(number)
    if pk is None or Order.number_of(pk) != number:
        return None
    orders = Order.objects.of_clinic(request.auth.clinic_id)
    return orders.select_related(*related).filter(pk=pk).first()


@extend_schema(exclude=True)
class MedicationRequestView(KnownQueryParameters, FhirView):
    """GET MedicationRequest/<order number>: an order of the key's clinic."""

    def get(self, request, number):
        order = clinic_order(request, number, "prescription__prescriber")
        if order is None:
            raise NotFound("The key's clinic has no MedicationRequest with this id.")
        resource = medication_request_resource(order)
        record_access(request, AccessAction.VIEWED_ORDER, order)
        return Response(resource)


# --- What the server does -------------------------------------------------------------------------


def capability_statement(base: str) -> dict:
    """The R4 CapabilityStatement of the FHIR endpoints at `base` (ending in a slash)."""
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITIES_CHANGED_ON.isoformat(),
        "publisher": settings.PHARMACY_NAME,
        "kind": "instance",
        "software": {"name": f"{settings.PHARMACY_NAME} order portal"},
        "implementation": {
            "description": "Low-dose naltrexone orders from a clinic's EHR",
            "url": base,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "A clinic's EHR orders compounded low-dose naltrexone for its patients. "
                    "Every request but this statement needs the clinic's API key (made by a "
                    "prescriber in the portal: Clinic > API keys). Errors are OperationOutcomes."
                ),
                "security": {
                    "description": (
                        "Send Authorization: Api-Key <key>. A key reaches only its clinic's "
                        "records (another clinic's answer 404) and has a rate limit (429 "
                        "with Retry-After)."
                    ),
                },
                "resource": [
                    {
                        "type": "MedicationRequest",
                        "documentation": (
                            "One order (a fill of a prescription); its id is the order "
                            "number. Ordered in a transaction Bundle; read by id."
                        ),
                        "interaction": [{"code": "read"}],
                    },
                    {
                        "type": "MedicationDispense",
                        "documentation": "What the pharmacy dispensed for an order: one per batch.",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            {
                                "name": "prescription",
                                "definition": (
                                    "http://hl7.org/fhir/SearchParameter/"
                                    "MedicationDispense-prescription"
                                ),
                                "type": "reference",
                                "documentation": (
                                    "Required: MedicationRequest/<order number>, or the number "
                                    "alone. Another clinic's order finds nothing."
                                ),
                            }
                        ],
                    },
                ],
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": (
                            f"POST the Bundle to {base}Bundle, with an {IDEMPOTENCY_HEADER} "
                            "header (the same for each retry): exactly one Patient, "
                            "Practitioner (the prescriber's NPI, a prescriber of the key's "
                            "clinic) and MedicationRequest (a contained Medication with its "
                            "form), and the patient's AllergyIntolerance, MedicationStatement "
                            "and Condition entries. A patient of the clinic with the same name "
                            "and date of birth is used as recorded. An order from a key that "
                            "does not sign is a draft for the prescriber to sign in the portal. "
                            "The dose rules' refusal is a 422 OperationOutcome; warnings are "
                            "acknowledged with the extension "
                            f"{ACKNOWLEDGED_WARNING_URL} (valueCode: the warning's code)."
                        ),
                    }
                ],
            }
        ],
    }
    return CapabilityStatement.model_validate(statement).model_dump(mode="json")


@extend_schema(exclude=True)
class MetadataView(KnownQueryParameters, FhirView):
    """GET metadata: the CapabilityStatement (no key needed)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        base = request.build_absolute_uri(reverse("fhir-metadata")).removesuffix("metadata")
        return Response(capability_statement(base))
