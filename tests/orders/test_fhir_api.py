"""The FHIR R4 endpoints of the orders app as a clinic's EHR uses them: a transaction Bundle
POSTed with the clinic's key makes exactly one patient and one order (a draft, or signed by a
key that signs for its owner) and answers with the exact transaction-response; a retry gets the
same answer; every refusal is an exact OperationOutcome and writes nothing; an order reads as a
MedicationRequest; every answer is `application/fhir+json`; any body gets an answer, never a
server error."""

import json
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from hypothesis import event, given, note
from hypothesis import strategies as st

from core.models import AccessAction, AccessEvent
from orders.fhir import medication_request_resource
from orders.models import Order, OrderEvent, OrderStatus, Patient, Prescription
from prescribers.models import IdempotentRequest
from tests.api_clients import api_client
from tests.factories import (
    TITRATION,
    PatientFactory,
    PrescriberFactory,
    clinic_of,
    submit_order,
)
from tests.orders.test_fhir import DELETE, MEDREQ, PATIENT, PORTAL, bundle_with, dose
from tests.test_fuzzing import (
    FUZZ,
    dates,
    deeply_nested,
    json_values,
    rolled_back,
    row_counts,
    scalar,
)

pytestmark = pytest.mark.django_db

FHIR_JSON = "application/fhir+json"
PT, MR = "Bundle.entry[0].resource", "Bundle.entry[2].resource"
PRACTITIONER_NPI = ("entry", 1, "resource", "identifier", 0, "value")
LIVER_DISEASE = f"{PORTAL}/StructureDefinition/liver-disease"
ACKNOWLEDGED = f"{PORTAL}/StructureDefinition/acknowledged-warning"
FINDING = f"{PORTAL}/CodeSystem/finding"
NO_PROBLEMS = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "information",
            "code": "informational",
            "details": {"text": "No problems found."},
        }
    ],
}


def bundle_for(prescriber, *edits) -> dict:
    """The example Bundle, ordered by this prescriber (their NPI), with the edits made."""
    return bundle_with((PRACTITIONER_NPI, prescriber.npi), *edits)


def post_bundle(api, data, key="first-try", content_type=FHIR_JSON):
    body = data if isinstance(data, str | bytes) else json.dumps(data)
    return api.post(
        reverse("fhir-bundle"), body, content_type=content_type, HTTP_IDEMPOTENCY_KEY=key
    )


def fhir(response) -> dict:
    assert response["Content-Type"] == FHIR_JSON
    return response.json()


def error(code: str, text: str, expression: str = "") -> dict:
    issue = {"severity": "error", "code": code, "details": {"text": text}}
    return {**issue, "expression": [expression]} if expression else issue


def outcome_of(*issues: dict) -> dict:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def transaction_response(patient: str, practitioner, order: Order, outcome=NO_PROBLEMS) -> dict:
    """What the example Bundle is answered with: its six entries in order."""
    patient_id = order.prescription.patient_id
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": patient, "location": f"Patient/{patient_id}"}},
            {"response": {"status": "200 OK", "location": f"Practitioner/{practitioner.pk}"}},
            {
                "response": {
                    "status": "201 Created",
                    "location": f"MedicationRequest/{order.number}",
                    "outcome": outcome,
                }
            },
            {"response": {"status": "200 OK"}},  # AllergyIntolerance
            {"response": {"status": "200 OK"}},  # MedicationStatement
            {"response": {"status": "200 OK"}},  # Condition
        ],
    }


def nothing_written() -> bool:
    return not (
        Patient.objects.exists()
        or Order.objects.exists()
        or Prescription.objects.exists()
        or IdempotentRequest.objects.exists()
        or AccessEvent.objects.exists()
    )


# --- The transaction Bundle -----------------------------------------------------------------------


def test_the_example_bundle_makes_one_patient_and_one_draft_order(api, key, prescriber):
    response = post_bundle(api, bundle_for(prescriber))

    assert response.status_code == 201
    patient, order = Patient.objects.get(), Order.objects.get()
    assert fhir(response) == transaction_response("201 Created", prescriber, order)
    assert response["Location"] == f"http://testserver/fhir/r4/MedicationRequest/{order.number}"
    assert (order.status, order.signer, order.created_by, order.ship_to) == (
        OrderStatus.DRAFT,
        prescriber,
        prescriber.user,
        "patient",
    )
    assert (patient.first_name, patient.last_name, str(patient.date_of_birth)) == (
        "Avery Jo",
        "Sample",
        "1978-04-12",
    )
    assert (patient.allergies, patient.current_medications, patient.conditions) == (
        "Penicillin (hives)",
        "Vitamin D3 2000 IU (1 capsule daily)",
        ["M79.7"],
    )
    assert (patient.phone.as_e164, patient.state, patient.created_by) == (
        "+12175550188",
        "IL",
        prescriber.user,
    )
    assert [s.dose_mg for s in order.prescription.steps.order_by("position")] == [
        Decimal("1.5"),
        Decimal("3"),
        Decimal("4.5"),
    ]
    event = OrderEvent.objects.get(order=order)
    assert event.parameters["via"] == f"FHIR with API key {key[0]}"
    assert not AccessEvent.objects.exists()  # the EHR sent the record: nothing was shown


def test_a_key_that_signs_submits_its_owners_order(signing_api, prescriber):
    response = post_bundle(signing_api, bundle_for(prescriber))

    assert response.status_code == 201
    order = Order.objects.get()
    assert (order.status, order.prescription.prescriber) == (OrderStatus.SUBMITTED, prescriber)
    assert fhir(response) == transaction_response("201 Created", prescriber, order)


def test_a_key_that_signs_drafts_the_order_of_another_prescriber_of_the_clinic(
    signing_api, prescriber
):
    colleague = PrescriberFactory(clinic=clinic_of(prescriber))

    response = post_bundle(signing_api, bundle_for(colleague))

    assert response.status_code == 201
    order = Order.objects.get()
    assert (order.status, order.signer) == (OrderStatus.DRAFT, colleague)
    assert fhir(response) == transaction_response("201 Created", colleague, order)


def test_a_body_sent_as_plain_json_is_read_and_the_answer_is_fhir_json(api, prescriber):
    response = api.post(
        reverse("fhir-bundle"),
        bundle_for(prescriber),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 201
    assert fhir(response)["type"] == "transaction-response"


def test_a_retry_gets_the_same_answer_and_writes_nothing(api, prescriber):
    data = bundle_for(prescriber)
    first = post_bundle(api, data)

    again = post_bundle(api, data)

    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert fhir(again) == fhir(first) and again["Location"] == first["Location"]
    assert (Patient.objects.count(), Order.objects.count(), Prescription.objects.count()) == (
        1,
        1,
        1,
    )
    assert IdempotentRequest.objects.count() == 1


def test_another_bundle_with_the_same_idempotency_key_is_422(api, prescriber):
    post_bundle(api, bundle_for(prescriber))

    other = post_bundle(api, bundle_for(prescriber, ((*MEDREQ, "note", 0, "text"), "Other.")))

    assert other.status_code == 422
    assert fhir(other) == outcome_of(
        error("processing", "Idempotency-Key 'first-try' was first used for another request.")
    )
    assert (Patient.objects.count(), Order.objects.count()) == (1, 1)


def test_a_bundle_needs_an_idempotency_key(api, prescriber):
    response = api.post(
        reverse("fhir-bundle"), json.dumps(bundle_for(prescriber)), content_type=FHIR_JSON
    )

    assert response.status_code == 400
    assert fhir(response) == outcome_of(
        error(
            "required",
            "Send an Idempotency-Key header of 1 to 255 printable characters (a UUID is best).",
        )
    )
    assert nothing_written()


def test_the_npi_of_another_clinics_prescriber_is_422_and_nothing_is_written(api, other_prescriber):
    response = post_bundle(api, bundle_for(other_prescriber))

    assert response.status_code == 422
    assert fhir(response) == outcome_of(
        error(
            "business-rule",
            "No approved prescriber of the key's clinic has this NPI.",
            "Bundle.entry[1].resource.identifier[0]",
        )
    )
    assert nothing_written()


def test_a_bundle_that_cannot_be_read_is_400_with_every_issue_and_nothing_is_written(
    api, prescriber
):
    data = bundle_for(prescriber, ((*PATIENT, "birthDate"), DELETE), ((*MEDREQ, "intent"), "plan"))

    response = post_bundle(api, data)

    assert response.status_code == 400
    assert fhir(response) == outcome_of(
        error("required", "Send the patient's date of birth.", f"{PT}.birthDate"),
        error("invalid", 'Send intent "order".', f"{MR}.intent"),
    )
    assert nothing_written()


def test_text_with_a_control_character_or_half_a_surrogate_pair_is_400(api, prescriber):
    data = bundle_for(
        prescriber,
        ((*MEDREQ, "note", 0, "text"), "Strength\x00 not made"),
        ((*PATIENT, "address", 0, "city"), "Spring\ud800field"),
        ((*PATIENT, "name", 0, "family"), "Tab\tCR\rLF\n are text"),
    )

    response = post_bundle(api, data)

    assert response.status_code == 400
    text = "Send valid Unicode text, without control characters (tab, CR, LF aside)."
    assert fhir(response) == outcome_of(
        error("invalid", text, f"{PT}.address[0].city"),
        error("invalid", text, f"{MR}.note[0].text"),
    )
    assert nothing_written()


def test_a_body_that_is_not_json_is_400(api):
    response = post_bundle(api, b"{not json")

    assert response.status_code == 400
    assert fhir(response) == outcome_of(
        error(
            "structure",
            "JSON parse error - Expecting property name enclosed in double quotes: line 1 "
            "column 2 (char 1)",
        )
    )
    assert nothing_written()


def test_a_patient_the_patient_form_refuses_is_400_pointing_into_the_bundle(api, prescriber):
    data = bundle_for(
        prescriber,
        ((*PATIENT, "telecom", 1, "value"), "555"),
        ((*PATIENT, "address", 0, "state"), "ZZ"),
    )

    response = post_bundle(api, data)

    assert response.status_code == 400
    assert fhir(response) == outcome_of(
        error("invalid", "The phone number entered is not valid.", f"{PT}.telecom"),
        error("invalid", '"ZZ" is not a valid choice.', f"{PT}.address.state"),
    )
    assert nothing_written()


def test_an_opioid_among_the_medications_of_a_patient_who_takes_none_is_400(api, prescriber):
    tramadol = {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {"text": "Tramadol 50 mg"},
        "subject": {"reference": "urn:uuid:6f1c2a4e-0b7d-4c1e-9a53-2d8e7f4b1a01"},
    }

    response = post_bundle(api, bundle_for(prescriber, (("entry", 4, "resource"), tramadol)))

    assert response.status_code == 400
    assert fhir(response) == outcome_of(
        error(
            "invalid",
            "The current medications name an opioid (Tramadol 50 mg), but the answer here is "
            '"No". Answer "Yes" if the patient takes it, or remove it from the list if they '
            "have stopped.",
            f"{PT}.extension('{PORTAL}/StructureDefinition/takes-opioids')",
        )
    )
    assert nothing_written()


def test_a_dose_the_rules_refuse_is_422_with_the_findings_in_the_bundle(api, prescriber):
    data = bundle_for(prescriber, ((*dose(2), "value"), 50))

    response = post_bundle(api, data)

    assert response.status_code == 422
    at = f"{MR}.dosageInstruction[2].doseAndRate[0].doseQuantity"
    assert fhir(response) == outcome_of(
        finding(
            "error",
            "dose.above_max",
            "Daily dose 50 mg in step 3 is above the LDN maximum of 5 mg (standard naltrexone "
            "is 50 mg tablets).",
            "LDN dosing guidance (Toljan & Vrooman, Med Sci 2018;6(4):82)",
            at,
        ),
        finding(
            "error",
            "capsule.strength_unavailable",
            "No 50 mg capsule in step 3: capsules come in 0.5 mg steps from 0.5 to 4.5 mg.",
            "pharmacy policy",
            at,
        ),
        finding(
            "warning",
            "titration.increase_too_large",
            "Step 3 goes up 47 mg a day (from 3 mg to 50 mg); increase by at most 1.5 mg a day "
            "per step.",
            "LDN Research Trust titration guidance",
            at,
        ),
    )
    assert nothing_written()


def finding(severity: str, code: str, text: str, source: str, expression: str) -> dict:
    return {
        "severity": severity,
        "code": "business-rule",
        "details": {"coding": [{"system": FINDING, "code": code}], "text": text},
        "diagnostics": f"Source: {source}",
        "expression": [expression],
    }


LIVER_WARNING = (
    "warning",
    "liver.disease",
    "Known liver disease: naltrexone is cleared by the liver; check liver function before and "
    "during treatment.",
    "naltrexone prescribing information",
    f"{PT}.extension('{LIVER_DISEASE}')",
)


def test_a_warning_a_signing_key_did_not_acknowledge_is_422_then_accepted_once_acknowledged(
    signing_api, prescriber
):
    liver = ((*PATIENT, "extension", "+"), {"url": LIVER_DISEASE, "valueBoolean": True})

    refused = post_bundle(signing_api, bundle_for(prescriber, liver))

    assert refused.status_code == 422
    assert fhir(refused) == outcome_of(
        error(
            "business-rule",
            f"The warning liver.disease is not acknowledged: after review, send the extension "
            f"{ACKNOWLEDGED} with valueCode liver.disease on the MedicationRequest.",
            f"{MR}.extension('{ACKNOWLEDGED}')",
        ),
        finding(*LIVER_WARNING),
    )
    assert nothing_written()

    acknowledged = ((*MEDREQ, "extension"), [{"url": ACKNOWLEDGED, "valueCode": "liver.disease"}])
    response = post_bundle(signing_api, bundle_for(prescriber, liver, acknowledged))

    assert response.status_code == 201  # the refusal kept nothing: the same key is reused
    order = Order.objects.get()
    assert order.status == OrderStatus.SUBMITTED
    assert order.prescription.acknowledged_warnings == [
        {"key": "liver.disease@patient.liver_disease", "message": LIVER_WARNING[2]}
    ]
    warnings = outcome_of(finding(*LIVER_WARNING))
    assert fhir(response) == transaction_response("201 Created", prescriber, order, warnings)


def test_a_patient_of_the_clinic_with_the_same_name_and_birth_date_is_used_as_recorded(
    api, prescriber
):
    recorded = PatientFactory(
        clinic=clinic_of(prescriber),
        first_name="avery jo",
        last_name="SAMPLE",
        date_of_birth="1978-04-12",
        allergies="NKDA",
    )
    PatientFactory(first_name="Avery Jo", last_name="Sample", date_of_birth="1978-04-12")

    response = post_bundle(api, bundle_for(prescriber))

    assert response.status_code == 201
    order = Order.objects.get()
    assert order.prescription.patient == recorded and Patient.objects.count() == 2
    assert fhir(response) == transaction_response("200 OK", prescriber, order)
    recorded.refresh_from_db()
    assert recorded.allergies == "NKDA"  # as recorded: the Bundle changes no record
    seen = AccessEvent.objects.filter(action=AccessAction.VIEWED_PATIENT, object_id=recorded.pk)
    assert seen.count() == 1
    # A retry shows the record again: another access event.
    assert post_bundle(api, bundle_for(prescriber))["Idempotent-Replayed"] == "true"
    assert seen.count() == 2


def test_a_contraindication_the_bundle_names_and_the_record_does_not_is_409(api, prescriber):
    recorded = PatientFactory(
        clinic=clinic_of(prescriber),
        first_name="Avery Jo",
        last_name="Sample",
        date_of_birth="1978-04-12",
    )
    liver = ((*PATIENT, "extension", "+"), {"url": LIVER_DISEASE, "valueBoolean": True})

    response = post_bundle(api, bundle_for(prescriber, liver))

    assert response.status_code == 409
    assert fhir(response) == outcome_of(
        error(
            "conflict",
            f"The Bundle says the patient has liver disease; the clinic's record of this "
            f"patient (Patient/{recorded.pk}) does not. Update the record (portal, or the API's "
            "patients) and send the Bundle again.",
            f"{PT}.extension('{LIVER_DISEASE}')",
        )
    )
    assert not Order.objects.exists() and not IdempotentRequest.objects.exists()
    # The refusal came from the record: it was seen.
    assert AccessEvent.objects.get().object_id == recorded.pk


# --- Reading an order -----------------------------------------------------------------------------


def test_an_order_of_the_clinic_reads_as_its_medication_request(api, prescriber):
    post_bundle(api, bundle_for(prescriber))
    order = Order.objects.get()

    response = api.get(reverse("fhir-medication-request", args=[order.number]))

    assert response.status_code == 200
    assert fhir(response) == medication_request_resource(order)
    assert fhir(response)["id"] == order.number
    event = AccessEvent.objects.get()
    assert (event.action, event.object_id) == (AccessAction.VIEWED_ORDER, order.pk)


@pytest.mark.parametrize("which", ["theirs", "none", "ours, digits only", "ours, lower case"])
def test_another_clinics_order_or_no_order_is_404(
    api, prescriber, patient, other_prescriber, which
):
    ours = submit_order(prescriber, patient, TITRATION)
    theirs = PatientFactory(clinic=clinic_of(other_prescriber))
    number = {
        "theirs": submit_order(other_prescriber, theirs, TITRATION).number,
        "none": "LDN-999999",
        "ours, digits only": str(ours.pk),  # an id is the number as written
        "ours, lower case": ours.number.lower(),
    }[which]

    response = api.get(reverse("fhir-medication-request", args=[number]))

    assert response.status_code == 404
    assert fhir(response) == outcome_of(
        error("not-found", "The key's clinic has no MedicationRequest with this id.")
    )
    assert not AccessEvent.objects.exists()


# --- Every answer is FHIR JSON --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/fhir/r4/Bundle"),
        ("get", "/fhir/r4/MedicationRequest/LDN-000001"),
        ("get", "/fhir/r4/MedicationDispense?prescription=LDN-000001"),
        ("get", "/fhir/r4/Patient/1"),
    ],
)
def test_without_a_key_the_answer_is_401_with_how_to_authenticate(method, path):
    response = getattr(api_client(None), method)(path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'
    assert fhir(response) == outcome_of(
        error("login", "Authentication credentials were not provided.")
    )


def test_a_wrong_key_is_401():
    response = api_client("nope.nope").get("/fhir/r4/MedicationRequest/LDN-000001")

    assert response.status_code == 401
    assert fhir(response)["issue"][0]["code"] == "login"


def test_the_rate_limit_answers_429_with_retry_after(api, settings):
    settings.API_RATE_LIMIT = "2/minute"
    path = reverse("fhir-medication-request", args=["LDN-000001"])
    assert [api.get(path).status_code for _ in range(2)] == [404, 404]

    response = api.get(path)

    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert fhir(response) == outcome_of(
        error(
            "throttled",
            f"Request was throttled. Expected available in {response['Retry-After']} seconds.",
        )
    )


def test_a_method_a_route_does_not_take_is_405(api):
    response = api.delete(reverse("fhir-bundle"))

    assert response.status_code == 405
    assert fhir(response) == outcome_of(error("not-supported", 'Method "DELETE" not allowed.'))


def test_options_is_not_a_fhir_interaction(api):
    response = api.options(reverse("fhir-bundle"))

    assert response.status_code == 405
    assert fhir(response) == outcome_of(error("not-supported", 'Method "OPTIONS" not allowed.'))


def test_a_query_parameter_the_interaction_does_not_take_is_400(api):
    response = api.get(reverse("fhir-medication-request", args=["LDN-000001"]) + "?_pretty=true")

    assert response.status_code == 400
    assert fhir(response) == outcome_of(
        error("invalid", "_pretty: This operation takes no such parameter.")
    )


def test_an_address_with_no_interaction_is_404(api):
    response = api.get("/fhir/r4/Patient/1")

    assert response.status_code == 404
    assert fhir(response) == outcome_of(
        error("not-found", "No FHIR interaction has this address: see metadata.")
    )


def test_a_control_character_in_the_address_is_400():
    response = Client().get("/fhir/r4/metadata?mode=%00")

    assert response.status_code == 400
    assert fhir(response) == outcome_of(
        error(
            "invalid",
            "The address has a control character in it (such as NUL), which no search or "
            "filter can take. Remove it and try again.",
        )
    )


# --- What the server does -------------------------------------------------------------------------


def test_the_capability_statement_lists_every_interaction_without_a_key():
    response = Client().get(reverse("fhir-metadata"), HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    statement = fhir(response)
    CapabilityStatement.model_validate(statement)
    rest = statement["rest"][0]
    assert (
        statement["fhirVersion"],
        statement["format"],
        statement["kind"],
        statement["implementation"]["url"],
        rest["mode"],
    ) == ("4.0.1", ["json"], "instance", "http://testserver/fhir/r4/", "server")
    assert [
        (
            resource["type"],
            [i["code"] for i in resource["interaction"]],
            [(p["name"], p["type"]) for p in resource.get("searchParam", [])],
        )
        for resource in rest["resource"]
    ] == [
        ("MedicationRequest", ["read"], []),
        ("MedicationDispense", ["search-type"], [("prescription", "reference")]),
    ]
    assert [i["code"] for i in rest["interaction"]] == ["transaction"]
    assert "http://testserver/fhir/r4/Bundle" in rest["interaction"][0]["documentation"]


# --- Any body -------------------------------------------------------------------------------------


SUPPLY = (*MEDREQ, "dispenseRequest")
text = scalar | st.sampled_from(["\ud800", "a\udfffb", "\x0b", "a\x00"])
amounts = st.integers(-5, 500) | st.floats(-1, 100, allow_nan=False).map(lambda x: round(x, 3))
# Elements the portal reads past the Bundle's own checks (the patient form, the NPI, the dose
# rules), with values of their type: most of them get that far.
FIELDS = {
    (*PATIENT, "birthDate"): dates,
    (*PATIENT, "telecom", 1, "value"): text,
    (*PATIENT, "address", 0, "state"): text,
    (*PATIENT, "address", 0, "postalCode"): text,
    (*PATIENT, "name", 0, "family"): text,
    (*PATIENT, "gender"): st.sampled_from(["female", "male", "other", "unknown"]),
    PRACTITIONER_NPI: text,
    (*dose(0), "value"): amounts,
    (*dose(1), "value"): amounts,
    (*dose(2), "value"): amounts,
    (*MEDREQ, "dosageInstruction", 0, "timing", "repeat", "frequency"): amounts,
    (*SUPPLY, "quantity", "value"): amounts,
    (*SUPPLY, "expectedSupplyDuration", "value"): amounts,
    (*SUPPLY, "numberOfRepeatsAllowed"): amounts,
    (*MEDREQ, "note", 0, "text"): text,
    (*MEDREQ, "extension"): st.lists(
        st.builds(lambda code: {"url": ACKNOWLEDGED, "valueCode": code}, text), max_size=3
    ),
}


@st.composite
def bundle_bodies(draw, valid: dict) -> tuple[str | bytes, str]:
    """The valid Bundle with one to three of the elements the portal reads changed, or one
    element anywhere replaced (or removed), any JSON, bytes that are not JSON, or JSON nested
    deeper than a parser goes; as FHIR JSON or plain JSON."""
    kinds = ["fields", "fields", "fields", "element", "json", "bytes", "nested"]
    kind = draw(st.sampled_from(kinds))
    content_type = draw(st.sampled_from([FHIR_JSON, "application/json"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)), content_type
    if kind == "nested":
        opening, closing = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return deeply_nested(opening, closing, draw(st.integers(10, 200_000))), content_type
    if kind == "json":
        return json.dumps(draw(json_values()), default=str, allow_nan=True), content_type
    if kind == "fields":
        paths = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3))
        data = json.loads(json.dumps(valid))
        for *parents, last in paths:
            holder = data
            for step in parents:
                holder = holder[step]
            holder[last] = draw(FIELDS[(*parents, last)])
        return json.dumps(data, allow_nan=True), content_type
    data = json.loads(json.dumps(valid))
    holder, name = data, None
    while True:  # walk down to a random element
        keys = list(range(len(holder))) if isinstance(holder, list) else list(holder)
        if not keys:
            break
        name = draw(st.sampled_from(keys))
        inner = holder[name]
        if not isinstance(inner, dict | list) or draw(st.booleans()):
            break
        holder = inner
    if name is not None:
        if isinstance(holder, dict) and draw(st.booleans()):
            del holder[name]
        else:
            holder[name] = draw(json_values())
    return json.dumps(data, default=str, allow_nan=True), content_type


@pytest.mark.fuzz
@pytest.mark.postgresql  # PostgreSQL refuses what SQLite stores (a NUL in text)
@FUZZ
@given(data=st.data())
def test_any_body_gets_a_fhir_answer_and_a_refused_one_writes_nothing(
    api, prescriber, settings, data
):
    settings.API_RATE_LIMIT = "100000/minute"
    body, content_type = data.draw(bundle_bodies(bundle_for(prescriber)))
    note(f"posted {body!r:.2000} as {content_type}")
    before = row_counts()
    with rolled_back():
        response = post_bundle(api, body, key=str(uuid.uuid4()), content_type=content_type)
        after = row_counts()
    assert response.status_code < 500
    event(f"HTTP {response.status_code}")  # --hypothesis-show-statistics: how far bodies got
    assert response["Content-Type"] == FHIR_JSON
    body_of = response.json()
    if response.status_code >= 400:
        assert body_of["resourceType"] == "OperationOutcome"
        assert after == before
    else:
        assert (response.status_code, body_of["type"]) == (201, "transaction-response")
