"""The FHIR R4B mapping of the partner API (orders/fhir.py): a clinic's Bundle maps to the exact
order, or to the exact list of every problem in it, never to another error; the
OperationOutcome and the MedicationRequest the portal writes are exact, valid R4B, and never
name the patient."""

import datetime
import json
from decimal import Decimal
from pathlib import Path

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from orders.dosing import (
    SOURCE_LABEL,
    SOURCE_LDN_DOSING,
    SOURCE_PHARMACY,
    DosageForm,
    Finding,
    Regimen,
    Severity,
    Step,
    check_regimen,
)
from orders.fhir import (
    FhirInputError,
    FhirOrder,
    FhirPaths,
    FhirPatient,
    Issue,
    medication_request_resource,
    operation_outcome,
    parse_bundle,
)
from orders.models import Order, OrderStatus, Patient, Prescription
from tests.factories import TITRATION, submit_order

EXAMPLE = Path(__file__).parent / "fhir_examples" / "ldn_titration_bundle.json"
PORTAL = "https://ldn-portal.example/fhir"
TAKES_OPIOIDS = f"{PORTAL}/StructureDefinition/takes-opioids"
UCUM = "http://unitsofmeasure.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
V3_FORM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"
MR = "Bundle.entry[2].resource"  # where the example holds each resource
PT = "Bundle.entry[0].resource"


def example() -> dict:
    return json.loads(EXAMPLE.read_text())


DELETE = object()
PATIENT = ("entry", 0, "resource")
MEDREQ = ("entry", 2, "resource")
MEDICATION = (*MEDREQ, "contained", 0)
SUPPLY = (*MEDREQ, "dispenseRequest")
OPIOIDS = (*PATIENT, "extension", 0)


def step(index: int) -> tuple:
    return (*MEDREQ, "dosageInstruction", index)


def repeat(index: int) -> tuple:
    return (*step(index), "timing", "repeat")


def dose(index: int) -> tuple:
    return (*step(index), "doseAndRate", 0, "doseQuantity")


def bundle_with(*edits) -> dict:
    """The example with each (path, value) edit made: DELETE removes the key, a path ending in
    "+" appends to the list."""
    data = example()
    for path, value in edits:
        *parents, last = path
        target = data
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        elif last == "+":
            target.append(value)
        else:
            target[last] = value
    return data


def nested_extensions(depth: int) -> dict:
    extension = {"url": "https://ehr.clinic.example/note", "valueString": "x"}
    for _ in range(depth):
        extension = {"url": "https://ehr.clinic.example/note", "extension": [extension]}
    return extension


def issues_of(data) -> list[Issue]:
    with pytest.raises(FhirInputError) as refused:
        parse_bundle(data)
    return refused.value.issues


def error(code: str, expression: str, message: str) -> Issue:
    return Issue("error", code, expression, message)


# --- The example Bundle ---------------------------------------------------------------------------

EXPECTED = FhirOrder(
    patient=FhirPatient(
        first_name="Avery Jo",
        last_name="Sample",
        date_of_birth=datetime.date(1978, 4, 12),
        sex="F",
        phone="+12175550188",
        address_line1="12 Example Avenue",
        address_line2="Apt 3",
        city="Springfield",
        state="IL",
        postal_code="62704",
        allergies="Penicillin (hives)",
        current_medications="Vitamin D3 2000 IU (1 capsule daily)",
        takes_opioids=False,
        conditions=("M79.7",),
        pregnant_or_breastfeeding=False,
        liver_disease=False,
        mrn="MRN-004217",
        mrn_system="https://ehr.clinic.example/mrn",
    ),
    npi="1987654328",
    regimen=Regimen(
        dosage_form=DosageForm.CAPSULE,
        steps=(Step(Decimal("1.5"), 14), Step(Decimal("3"), 14), Step(Decimal("4.5"), 30)),
        doses_per_day=1,
        quantity=Decimal("58"),
        days_supply=58,
        refills=2,
        concentration_mg_per_ml=None,
        time_of_day="bedtime",
    ),
    diagnosis_codes=("M79.7",),
    reason_for_compounding=(
        "Strength not commercially available: LDN doses are 1.5-4.5 mg, the marketed tablet is "
        "50 mg."
    ),
    ship_to="patient",
    acknowledged_warnings=(),
    acknowledgement_reason="",
    paths=FhirPaths(
        patient=PT,
        medication_request=MR,
        medication=f"{MR}.contained[0]",
        steps=(
            f"{MR}.dosageInstruction[0]",
            f"{MR}.dosageInstruction[1]",
            f"{MR}.dosageInstruction[2]",
        ),
        bundle="Bundle",
    ),
)


def test_the_example_titration_bundle_maps_to_the_exact_order():
    assert parse_bundle(example()) == EXPECTED
    assert EXPECTED.regimen == TITRATION  # the titration every dose rule accepts


def test_the_patient_fields_are_the_patient_forms_fields():
    fields = EXPECTED.patient.editable_fields()

    assert tuple(fields) == Patient.EDITABLE_FIELDS
    assert fields["conditions"] == ["M79.7"]
    assert fields["takes_opioids"] is False


def test_steps_are_read_in_the_order_of_their_sequence():
    data = example()
    data["entry"][2]["resource"]["dosageInstruction"].reverse()  # sequence 3, 2, 1

    order = parse_bundle(data)

    assert order.regimen.steps == EXPECTED.regimen.steps
    assert order.paths.steps == (
        f"{MR}.dosageInstruction[2]",
        f"{MR}.dosageInstruction[1]",
        f"{MR}.dosageInstruction[0]",
    )


def test_an_oral_liquid_in_the_morning_with_references_by_id_and_no_known_allergy():
    liquid = {"system": f"{PORTAL}/CodeSystem/dosage-form", "code": "oral_liquid"}
    strength = {
        "numerator": {"value": 1, "unit": "mg", "system": UCUM, "code": "mg"},
        "denominator": {"value": 1, "unit": "mL", "system": UCUM, "code": "mL"},
    }
    data = bundle_with(
        ((*PATIENT, "id"), "pat-1"),
        (("entry", 1, "resource", "id"), "doc-1"),
        ((*MEDREQ, "subject"), {"reference": "Patient/pat-1"}),
        ((*MEDREQ, "requester"), {"reference": "Practitioner/doc-1"}),
        ((*MEDICATION, "form"), {"coding": [liquid]}),
        ((*MEDICATION, "ingredient", 0, "strength"), strength),
        ((*SUPPLY, "quantity"), {"value": 174, "unit": "mL", "system": UCUM, "code": "mL"}),
        *(((*repeat(index), "when"), ["MORN"]) for index in range(3)),
        (
            ("entry", 3, "resource", "code"),
            {"coding": [{"system": "http://snomed.info/sct", "code": "409137002"}]},
        ),
    )

    order = parse_bundle(data)

    assert order.regimen == Regimen(
        dosage_form=DosageForm.ORAL_LIQUID,
        steps=EXPECTED.regimen.steps,
        doses_per_day=1,
        quantity=Decimal("174"),
        days_supply=58,
        refills=2,
        concentration_mg_per_ml=Decimal("1"),
        time_of_day="morning",
    )
    assert order.patient.allergies == "NKDA"


def test_a_step_may_last_a_period_of_dates_or_weeks():
    data = bundle_with(
        ((*repeat(0), "boundsDuration"), DELETE),
        ((*repeat(0), "boundsPeriod"), {"start": "2026-03-02", "end": "2026-03-15"}),
        ((*repeat(1), "boundsDuration"), {"value": 2, "system": UCUM, "code": "wk"}),
    )

    assert parse_bundle(data).regimen.steps == EXPECTED.regimen.steps  # 14 days each


def test_the_diagnosis_may_be_a_condition_of_the_bundle():
    condition = {"reference": example()["entry"][5]["fullUrl"]}
    data = bundle_with(
        ((*MEDREQ, "reasonCode"), DELETE), ((*MEDREQ, "reasonReference"), [condition])
    )

    assert parse_bundle(data).diagnosis_codes == ("M79.7",)


def test_acknowledged_warnings_give_the_keys_of_those_warnings_only():
    acknowledged = [
        {"url": f"{PORTAL}/StructureDefinition/acknowledged-warning", "valueCode": code}
        for code in ("dose.above_usual", "duplicate.open_order")
    ]
    reason = {
        "url": f"{PORTAL}/StructureDefinition/acknowledgement-reason",
        "valueString": "Second pharmacy closed; this order replaces it.",
    }
    order = parse_bundle(bundle_with(((*MEDREQ, "extension"), [*acknowledged, reason])))
    findings = [
        Finding("dose.above_usual", Severity.WARNING, "steps.2.dose_mg", "...", SOURCE_LDN_DOSING),
        Finding("duplicate.open_order", Severity.WARNING, "patient.orders", "...", SOURCE_PHARMACY),
        Finding("age.minor", Severity.WARNING, "patient.date_of_birth", "...", SOURCE_LABEL),
        Finding("dose.above_max", Severity.ERROR, "steps.2.dose_mg", "...", SOURCE_LDN_DOSING),
    ]

    assert order.acknowledged_warnings == ("dose.above_usual", "duplicate.open_order")
    assert order.acknowledgement_reason == "Second pharmacy closed; this order replaces it."
    assert order.acknowledged_keys(findings) == [
        "dose.above_usual@steps.2.dose_mg",
        "duplicate.open_order@patient.orders",
    ]


# --- Every kind of bad input, with every problem it has -------------------------------------------

NPI_PATH = "Bundle.entry[1].resource.identifier"
OTHER_ONLY = (
    "The portal orders naltrexone only: name it, alone, in the medication's code (text or display)."
)
FORM_CODES = (
    f"Send the form as a coding of {PORTAL}/CodeSystem/dosage-form (capsule, oral_liquid, "
    f"sublingual_drops, topical_cream) or of {V3_FORM} (CAP, ORCAP, ORALSOL, CRM, TOPCRM)."
)
REFER_TO_PATIENT = "Refer to the Patient entry of this Bundle."
SAME_TIMING = (
    "Every step must have the same frequency and time of day as the first (the portal's "
    "schedule has one for all its steps)."
)
OPIOID_QUESTION = (
    "Say whether the patient currently takes any opioid: naltrexone cannot be given with "
    f"opioids (extension {TAKES_OPIOIDS}, valueBoolean)."
)

BAD_INPUT = {
    "a JSON list, not an object": (
        lambda: [],
        [error("structure", "Bundle", "Send a FHIR Bundle as a JSON object.")],
    ),
    "a Patient, not a Bundle": (
        lambda: {"resourceType": "Patient"},
        [error("invalid", "Bundle.resourceType", 'Send a Bundle (resourceType "Bundle").')],
    ),
    "a batch Bundle": (
        lambda: bundle_with((("type",), "batch")),
        [error("invalid", "Bundle.type", 'Send type "transaction" or "collection".')],
    ),
    "no entries": (
        lambda: bundle_with((("entry",), [])),
        [
            error(
                "required",
                f"Bundle.entry.resource.ofType({name})",
                f"Send exactly one {name} entry.",
            )
            for name in ("Patient", "Practitioner", "MedicationRequest")
        ],
    ),
    "no Practitioner and no MedicationRequest": (
        lambda: bundle_with((("entry", 2), DELETE), (("entry", 1), DELETE)),
        [
            error(
                "required",
                "Bundle.entry.resource.ofType(Practitioner)",
                "Send exactly one Practitioner entry.",
            ),
            error(
                "required",
                "Bundle.entry.resource.ofType(MedicationRequest)",
                "Send exactly one MedicationRequest entry.",
            ),
        ],
    ),
    "two patients": (
        lambda: bundle_with((("entry", "+"), example()["entry"][0])),
        [error("invalid", "Bundle.entry[6].resource", "Send exactly one Patient entry.")],
    ),
    "extensions nested 300 deep": (
        lambda: bundle_with(((*PATIENT, "extension", "+"), nested_extensions(300))),
        [error("structure", PT, "This cannot be read as a FHIR R4B Patient.")],
    ),
    "a resource the portal does not read": (
        lambda: bundle_with(
            (("entry", "+"), {"resource": {"resourceType": "Observation", "status": "final"}})
        ),
        [
            error(
                "invalid",
                "Bundle.entry[6].resource.resourceType",
                "The portal reads Patient, Practitioner, MedicationRequest, Medication, "
                "AllergyIntolerance, MedicationStatement, Condition resources, not this one.",
            )
        ],
    ),
    "an unknown contained resource": (
        lambda: bundle_with(((*MEDREQ, "contained", "+"), {"resourceType": "Nonsense"})),
        [
            error(
                "structure",
                f"{MR}.contained[1]",
                "A MedicationRequest may contain only its Medication.",
            )
        ],
    ),
    "an element FHIR does not have": (
        lambda: bundle_with(((*MEDREQ, "dosage"), [])),
        [
            error(
                "structure", f"{MR}.dosage", "This is not an element of FHIR R4B MedicationRequest."
            )
        ],
    ),
    "wrong types": (
        lambda: bundle_with(
            ((*PATIENT, "gender"), 5), ((*MEDREQ, "status"), True), ((*SUPPLY, "quantity"), [58])
        ),
        [
            error("invalid", f"{PT}.gender", "Input should be a valid string"),
            error(
                "structure", f"{MR}.dispenseRequest.quantity", "Send this element as a JSON object."
            ),
            error("invalid", f"{MR}.status", "Input should be a valid string"),
        ],
    ),
    "strings where numbers and booleans go": (
        lambda: bundle_with(
            ((*dose(0), "value"), "1.5"),
            ((*repeat(0), "boundsDuration", "value"), "14"),
            ((*SUPPLY, "numberOfRepeatsAllowed"), "2"),
            ((*OPIOIDS, "valueBoolean"), "false"),
        ),
        [
            error(
                "invalid", f"{PT}.extension[0].valueBoolean", "Send true or false (a JSON boolean)."
            ),
            error(
                "invalid",
                f"{MR}.dosageInstruction[0].timing.repeat.boundsDuration.value",
                "Send a JSON number.",
            ),
            error(
                "invalid",
                f"{MR}.dosageInstruction[0].doseAndRate[0].doseQuantity.value",
                "Send a JSON number.",
            ),
            error("invalid", f"{MR}.dispenseRequest.numberOfRepeatsAllowed", "Send a JSON number."),
        ],
    ),
    "words where a number goes": (
        lambda: bundle_with(((*SUPPLY, "quantity", "value"), "fifty-eight")),
        [
            error(
                "invalid",
                f"{MR}.dispenseRequest.quantity.value",
                "Decimal value string does not match spec regex.",
            )
        ],
    ),
    "huge numbers": (
        lambda: bundle_with(
            ((*dose(0), "value"), 1e300),
            ((*SUPPLY, "quantity", "value"), 1e20),
            ((*repeat(2), "boundsDuration", "value"), 1e9),
        ),
        [
            error(
                "invalid",
                f"{MR}.dosageInstruction[0].doseAndRate[0].doseQuantity.value",
                "Ensure that there are no more than 7 digits in total.",
            ),
            error(
                "invalid",
                f"{MR}.dosageInstruction[2].timing.repeat.boundsDuration.value",
                "Ensure this value is less than or equal to 10000.",
            ),
            error(
                "invalid",
                f"{MR}.dispenseRequest.quantity.value",
                "Ensure that there are no more than 8 digits in total.",
            ),
        ],
    ),
    "more refills than FHIR counts": (
        lambda: bundle_with(((*SUPPLY, "numberOfRepeatsAllowed"), 10**12)),
        [
            error(
                "invalid",
                f"{MR}.dispenseRequest.numberOfRepeatsAllowed",
                "Input should be less than or equal to 2147483647",
            )
        ],
    ),
    "naloxone, not naltrexone": (
        lambda: bundle_with(((*MEDICATION, "code", "text"), "Naloxone HCl 4 mg")),
        [error("invalid", f"{MR}.contained[0].code", OTHER_ONLY)],
    ),
    "naltrexone combined with an opioid": (
        lambda: bundle_with(
            ((*MEDICATION, "code", "text"), "Buprenorphine and naltrexone"),
            (
                (*MEDICATION, "ingredient", 1),
                {"itemCodeableConcept": {"text": "Buprenorphine"}, "isActive": True},
            ),
        ),
        [
            error("invalid", f"{MR}.contained[0].code", OTHER_ONLY),
            error(
                "invalid",
                f"{MR}.contained[0].ingredient[1].item",
                "The pharmacy compounds naltrexone as the only active ingredient: name it in "
                "itemCodeableConcept, and mark others isActive false.",
            ),
        ],
    ),
    "an extended-release capsule": (
        lambda: bundle_with(
            ((*MEDICATION, "form"), {"coding": [{"system": V3_FORM, "code": "ERCAP"}]})
        ),
        [error("required", f"{MR}.contained[0].form", FORM_CODES)],
    ),
    "the medication as a concept, without its form": (
        lambda: bundle_with(
            ((*MEDREQ, "medicationReference"), DELETE),
            ((*MEDREQ, "contained"), DELETE),
            ((*MEDREQ, "medicationCodeableConcept"), {"text": "Naltrexone HCl capsule"}),
        ),
        [
            error(
                "required",
                f"{MR}.medicationReference",
                "Send the medication as a Medication (contained, or an entry of this Bundle) "
                "with its form: capsule, oral liquid, sublingual drops or cream.",
            )
        ],
    ),
    "a reference to no medication": (
        lambda: bundle_with(((*MEDREQ, "medicationReference", "reference"), "#elsewhere")),
        [
            error(
                "invalid",
                f"{MR}.medicationReference",
                "Refer to a contained Medication (#id) or a Medication entry of this Bundle.",
            )
        ],
    ),
    "a reason that refers to nothing": (
        lambda: bundle_with(((*MEDREQ, "reasonReference"), [{"reference": "Condition/none"}])),
        [
            error(
                "invalid", f"{MR}.reasonReference[0]", "Refer to a Condition entry of this Bundle."
            )
        ],
    ),
    "a dose in mL": (
        lambda: bundle_with(((*dose(1), "code"), "mL"), ((*dose(1), "unit"), "mL")),
        [
            error(
                "invalid",
                f"{MR}.dosageInstruction[1].doseAndRate[0].doseQuantity",
                "Send the dose in mg (UCUM code mg).",
            )
        ],
    ),
    "a step without its duration": (
        lambda: bundle_with(((*repeat(2), "boundsDuration"), DELETE)),
        [
            error(
                "required",
                f"{MR}.dosageInstruction[2].timing.repeat.boundsDuration",
                "Send how many days this step lasts (boundsDuration, in days).",
            )
        ],
    ),
    "steps without their order": (
        lambda: bundle_with(((*step(0), "sequence"), DELETE), ((*step(1), "sequence"), 3)),
        [
            error(
                "required",
                f"{MR}.dosageInstruction[0].sequence",
                "Number the steps with sequence (1, 2, ...): a titration's steps follow each "
                "other.",
            ),
            error(
                "invalid",
                f"{MR}.dosageInstruction[2].sequence",
                "Two steps have this sequence: the portal's steps follow each other, one at a "
                "time.",
            ),
        ],
    ),
    "every other day, and weekly": (
        lambda: bundle_with(((*repeat(0), "period"), 2), ((*repeat(1), "dayOfWeek"), ["mon"])),
        [
            error(
                "invalid",
                f"{MR}.dosageInstruction[0].timing.repeat.frequency",
                "Send a whole number of doses a day (frequency per 1 day).",
            ),
            error(
                "invalid",
                f"{MR}.dosageInstruction[1].timing.repeat.dayOfWeek",
                "LDN is taken every day: send no dayOfWeek.",
            ),
        ],
    ),
    "a split dose in one step, and before meals": (
        lambda: bundle_with(((*repeat(1), "frequency"), 2), ((*repeat(2), "when"), ["AC"])),
        [
            error(
                "invalid",
                f"{MR}.dosageInstruction[2].timing.repeat.when",
                "Send when as HS (at bedtime) or MORN (in the morning).",
            ),
            error("invalid", f"{MR}.dosageInstruction[1].timing.repeat", SAME_TIMING),
        ],
    ),
    "capsules counted in mL": (
        lambda: bundle_with(((*SUPPLY, "quantity", "code"), "mL")),
        [
            error(
                "invalid",
                f"{MR}.dispenseRequest.quantity",
                "Send the quantity in capsules (unit {capsule}).",
            )
        ],
    ),
    "a liquid without its concentration": (
        lambda: bundle_with(
            (
                (*MEDICATION, "form", "coding"),
                [{"system": f"{PORTAL}/CodeSystem/dosage-form", "code": "oral_liquid"}],
            ),
            ((*SUPPLY, "quantity"), {"value": 174, "system": UCUM, "code": "mL"}),
        ),
        [
            error(
                "required",
                f"{MR}.contained[0].ingredient[0].strength",
                "Send the concentration as the naltrexone ingredient's strength, in mg per mL.",
            )
        ],
    ),
    "no reason for compounding and no supply": (
        lambda: bundle_with(((*MEDREQ, "note"), DELETE), ((*MEDREQ, "dispenseRequest"), DELETE)),
        [
            error(
                "required",
                f"{MR}.dispenseRequest",
                "Send dispenseRequest with quantity, expectedSupplyDuration and "
                "numberOfRepeatsAllowed (the refills).",
            ),
            error(
                "required",
                f"{MR}.note",
                "Send the reason for compounding as a note (503A: a compounded preparation "
                "needs one, e.g. the strength is not made commercially).",
            ),
        ],
    ),
    "not a prescription to fill": (
        lambda: bundle_with(((*MEDREQ, "intent"), "plan"), ((*MEDREQ, "status"), "draft")),
        [
            error(
                "invalid", f"{MR}.status", 'Send status "active": the portal fills prescriptions.'
            ),
            error("invalid", f"{MR}.intent", 'Send intent "order".'),
        ],
    ),
    "shipped nowhere the portal knows": (
        lambda: bundle_with(((*SUPPLY, "extension", 0, "valueCode"), "home")),
        [
            error(
                "invalid", f"{MR}.dispenseRequest.extension[0]", "Send valueCode clinic or patient."
            )
        ],
    ),
    "the opioid question unanswered": (
        lambda: bundle_with(((*PATIENT, "extension"), DELETE)),
        [error("required", f"{PT}.extension('{TAKES_OPIOIDS}')", OPIOID_QUESTION)],
    ),
    "the opioid question answered twice": (
        lambda: bundle_with(
            ((*PATIENT, "extension", "+"), {"url": TAKES_OPIOIDS, "valueBoolean": True})
        ),
        [error("invalid", f"{PT}.extension[1]", f"Send the extension {TAKES_OPIOIDS} once.")],
    ),
    "a patient without given name, birth day, phone or ZIP code": (
        lambda: bundle_with(
            ((*PATIENT, "telecom"), DELETE),
            ((*PATIENT, "address", 0, "postalCode"), DELETE),
            ((*PATIENT, "birthDate"), "1978"),
            ((*PATIENT, "name", 0, "given"), DELETE),
        ),
        [
            error("required", f"{PT}.name[0].given", "Send the patient's given name."),
            error("invalid", f"{PT}.birthDate", "Send the full date of birth, YYYY-MM-DD."),
            error("required", f"{PT}.telecom", "Send the patient's phone number (system phone)."),
            error(
                "required",
                f"{PT}.address[0].postalCode",
                "Send the ZIP code of the patient's address.",
            ),
        ],
    ),
    "an NPI that fails its check digit": (
        lambda: bundle_with((("entry", 1, "resource", "identifier", 0, "value"), "1234567890")),
        [
            error(
                "invalid",
                f"{NPI_PATH}[0].value",
                "This NPI fails its check digit; please check it for a typing error.",
            )
        ],
    ),
    "no NPI": (
        lambda: bundle_with((("entry", 1, "resource", "identifier"), DELETE)),
        [
            error(
                "required",
                NPI_PATH,
                "Send the prescriber's NPI (identifier with system "
                "http://hl7.org/fhir/sid/us-npi).",
            )
        ],
    ),
    "no allergies": (
        lambda: bundle_with((("entry", 3), DELETE)),
        [
            error(
                "required",
                "Bundle.entry.resource.ofType(AllergyIntolerance)",
                "Send the patient's current allergies as AllergyIntolerance entries (SNOMED "
                'CT 409137002 "No known drug allergy" when there are none).',
            )
        ],
    ),
    "references to someone else, and no requester": (
        lambda: bundle_with(
            (("entry", 3, "resource", "patient", "reference"), "Patient/other"),
            ((*MEDREQ, "subject", "reference"), "Patient/other"),
            ((*MEDREQ, "requester"), DELETE),
        ),
        [
            error("invalid", "Bundle.entry[3].resource.patient", REFER_TO_PATIENT),
            error("invalid", f"{MR}.subject", REFER_TO_PATIENT),
            error("required", f"{MR}.requester", "Refer to the Practitioner entry of this Bundle."),
        ],
    ),
    "conditions not in ICD-10-CM": (
        lambda: bundle_with(
            (("entry", 5, "resource", "code"), {"text": "Fibromyalgia"}),
            (
                ("entry", "+"),
                {
                    "resource": {
                        **example()["entry"][5]["resource"],
                        "code": {"coding": [{"system": ICD10CM, "code": "ZZZ.9"}]},
                    }
                },
            ),
        ),
        [
            error(
                "required",
                "Bundle.entry[5].resource.code",
                f"Code the condition in ICD-10-CM (system {ICD10CM}).",
            ),
            error(
                "invalid",
                "Bundle.entry[6].resource.code.coding[0].code",
                "Not an ICD-10-CM code: ZZZ.9.",
            ),
            error(
                "required",
                "Bundle.entry[6].resource.code",
                f"Code the condition in ICD-10-CM (system {ICD10CM}).",
            ),
        ],
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_refused_with_every_problem_and_where_it_is(case):
    make, expected = BAD_INPUT[case]

    assert issues_of(make()) == expected


# --- Fuzzing: nothing but FhirInputError ----------------------------------------------------------

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
WORDS = st.sampled_from(
    [
        "Patient",
        "Medication",
        "Bundle",
        "Nonsense",
        "#ldn-capsule",
        "mg",
        "mL",
        "d",
        "wk",
        "HS",
        "1978",
        "2026-02-30",
        "1.5",
        "",
        "urn:uuid:6f1c2a4e-0b7d-4c1e-9a53-2d8e7f4b1a01",
    ]
)
KEYS = st.sampled_from(
    [
        "resourceType",
        "contained",
        "entry",
        "resource",
        "extension",
        "url",
        "valueBoolean",
        "coding",
        "system",
        "code",
        "value",
        "reference",
        "_birthDate",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.decimals(),  # a view may parse JSON numbers as Decimal: any exponent, NaN, infinity
    st.text(max_size=20),
    WORDS,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)


def _places(value, path=()):
    """Every path into a JSON value."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places(item, (*path, index))


PLACES = [place for place in _places(example()) if place]


def _spoil(data, place: tuple, value) -> None:
    """Replace (or, with DELETE, remove) what is at `place`, if it is still there."""
    *parents, last = place
    target = data
    for key in parents:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(target, dict):
        if value is DELETE:
            target.pop(last, None)
        else:
            target[last] = value
    elif isinstance(target, list) and isinstance(last, int) and last < len(target):
        target[last] = {} if value is DELETE else value


@st.composite
def spoiled_bundles(draw):
    """The example with one to three of its values replaced by any JSON, or deleted."""
    data = example()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        _spoil(data, draw(st.sampled_from(PLACES)), draw(st.one_of(st.just(DELETE), JSON)))
    return data


def _parses_or_refuses(data) -> None:
    try:
        parse_bundle(data)
    except FhirInputError as refused:
        assert refused.issues
        assert {issue.severity for issue in refused.issues} == {"error"}
        assert {issue.code for issue in refused.issues} <= {"invalid", "required", "structure"}


@FUZZ
@given(spoiled_bundles())
def test_a_spoiled_bundle_is_read_or_refused_never_an_error(data):
    _parses_or_refuses(data)


@FUZZ
@given(JSON)
def test_any_json_is_refused_never_an_error(data):
    _parses_or_refuses(data)
    _parses_or_refuses({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": data}]})
    spoiled = example()
    spoiled["entry"][2]["resource"]["contained"].append(data)
    _parses_or_refuses(spoiled)


# --- OperationOutcome -----------------------------------------------------------------------------

FINDINGS = [
    Finding(
        "quantity.mismatch",
        Severity.ERROR,
        "quantity",
        "Quantity 50 capsules does not match the schedule, which needs 58 capsules (within 10 %).",
        SOURCE_PHARMACY,
    ),
    Finding(
        "dose.above_usual",
        Severity.WARNING,
        "steps.2.dose_mg",
        "Daily dose 4.75 mg in step 3 is above the usual maximum of 4.5 mg; confirm it.",
        SOURCE_LDN_DOSING,
    ),
    Finding(
        "opioid.current",
        Severity.ERROR,
        "patient.takes_opioids",
        "The patient takes opioids.",
        SOURCE_LABEL,
    ),
    Finding(
        "opioid.peripheral",
        "info",
        "patient.medications",
        "Loperamide: confirm it is still needed.",
        SOURCE_LABEL,
    ),
]
FINDING_SYSTEM = f"{PORTAL}/CodeSystem/finding"


def business_rule(severity, code, expression, text, source) -> dict:
    return {
        "severity": severity,
        "code": "business-rule",
        "details": {"coding": [{"system": FINDING_SYSTEM, "code": code}], "text": text},
        "diagnostics": f"Source: {source}",
        "expression": [expression],
    }


def test_the_operation_outcome_of_findings_is_exact_and_valid_r4b():
    outcome = operation_outcome(findings=FINDINGS)

    assert outcome == {
        "resourceType": "OperationOutcome",
        "issue": [
            business_rule(
                "error",
                "quantity.mismatch",
                "MedicationRequest.dispenseRequest.quantity",
                FINDINGS[0].message,
                "pharmacy policy",
            ),
            business_rule(
                "warning",
                "dose.above_usual",
                "MedicationRequest.dosageInstruction[2].doseAndRate[0].doseQuantity",
                FINDINGS[1].message,
                SOURCE_LDN_DOSING,
            ),
            business_rule(
                "error",
                "opioid.current",
                f"Patient.extension('{TAKES_OPIOIDS}')",
                "The patient takes opioids.",
                "naltrexone prescribing information",
            ),
            business_rule(
                "information",
                "opioid.peripheral",
                "MedicationStatement",
                "Loperamide: confirm it is still needed.",
                SOURCE_LABEL,
            ),
        ],
    }
    assert OperationOutcome.model_validate(outcome).model_dump(mode="json") == outcome


def test_findings_point_into_the_bundle_they_came_from_and_input_issues_come_first():
    order = parse_bundle(example())
    issue = error("required", f"{MR}.note", "Send the reason.")

    outcome = operation_outcome(findings=FINDINGS, issues=[issue], paths=order.paths)

    assert [entry["expression"] for entry in outcome["issue"]] == [
        [f"{MR}.note"],
        [f"{MR}.dispenseRequest.quantity"],
        [f"{MR}.dosageInstruction[2].doseAndRate[0].doseQuantity"],
        [f"{PT}.extension('{TAKES_OPIOIDS}')"],
        ["Bundle.entry.resource.ofType(MedicationStatement)"],
    ]
    assert outcome["issue"][0] == {
        "severity": "error",
        "code": "required",
        "details": {"text": "Send the reason."},
        "expression": [f"{MR}.note"],
    }


def test_the_dose_rules_findings_on_a_parsed_bundle_point_at_the_steps_sent():
    data = bundle_with(((*dose(2), "value"), 5.5))
    data["entry"][2]["resource"]["dosageInstruction"].reverse()  # the 5.5 mg step is sent first
    order = parse_bundle(data)

    outcome = operation_outcome(findings=check_regimen(order.regimen), paths=order.paths)

    assert [
        (entry["severity"], entry["details"]["coding"][0]["code"], entry["expression"])
        for entry in outcome["issue"]
    ] == [
        ("error", "dose.above_max", [f"{MR}.dosageInstruction[0].doseAndRate[0].doseQuantity"]),
        (
            "warning",
            "titration.increase_too_large",
            [f"{MR}.dosageInstruction[0].doseAndRate[0].doseQuantity"],
        ),
    ]


def test_no_findings_and_no_issues_is_one_informational_issue():
    assert operation_outcome() == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "informational",
                "details": {"text": "No problems found."},
            }
        ],
    }


# --- MedicationRequest of an order ----------------------------------------------------------------


def mg_step(sequence: int, dose_mg, days: int) -> dict:
    return {
        "sequence": sequence,
        "timing": {
            "repeat": {
                "boundsDuration": {"value": days, "unit": "days", "system": UCUM, "code": "d"},
                "frequency": 1,
                "period": 1,
                "periodUnit": "d",
                "when": ["HS"],
            }
        },
        "doseAndRate": [
            {"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}
        ],
    }


@pytest.fixture
def order(prescriber, patient, clock) -> Order:
    return submit_order(prescriber, patient, TITRATION)


@pytest.mark.django_db
def test_the_medication_request_of_an_order_is_exact_and_valid_r4b(order, prescriber, patient):
    resource = medication_request_resource(order)

    assert resource == {
        "resourceType": "MedicationRequest",
        "id": order.number,
        "contained": [
            {
                "resourceType": "Medication",
                "id": "naltrexone",
                "code": {"text": "Naltrexone HCl capsules"},
                "form": {
                    "coding": [
                        {
                            "system": f"{PORTAL}/CodeSystem/dosage-form",
                            "code": "capsule",
                            "display": "Capsule",
                        },
                        {"system": V3_FORM, "code": "CAP"},
                    ],
                    "text": "Capsule",
                },
                "ingredient": [
                    {"itemCodeableConcept": {"text": "Naltrexone hydrochloride"}, "isActive": True}
                ],
            }
        ],
        "extension": [
            {
                "url": f"{PORTAL}/StructureDefinition/order-status",
                "valueCoding": {
                    "system": f"{PORTAL}/CodeSystem/order-status",
                    "code": "submitted",
                    "display": "Submitted",
                },
            },
            {"url": f"{PORTAL}/StructureDefinition/fill-number", "valueUnsignedInt": 0},
        ],
        "identifier": [{"system": f"{PORTAL}/sid/order-number", "value": order.number}],
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "#naltrexone"},
        "subject": {"reference": f"Patient/{patient.pk}"},
        "authoredOn": "2026-03-02",
        "requester": {
            "reference": f"Practitioner/{prescriber.pk}",
            "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": prescriber.npi},
        },
        "reasonCode": [
            {"coding": [{"system": ICD10CM, "code": "M79.7", "display": "Fibromyalgia"}]}
        ],
        "note": [{"text": "Strength not available commercially"}],
        "dosageInstruction": [mg_step(1, 1.5, 14), mg_step(2, 3, 14), mg_step(3, 4.5, 30)],
        "dispenseRequest": {
            "extension": [{"url": f"{PORTAL}/StructureDefinition/ship-to", "valueCode": "clinic"}],
            "validityPeriod": {"start": "2026-03-02", "end": "2027-03-02"},
            "numberOfRepeatsAllowed": 2,
            "quantity": {"value": 58, "unit": "capsules", "system": UCUM, "code": "{capsule}"},
            "expectedSupplyDuration": {"value": 58, "unit": "days", "system": UCUM, "code": "d"},
        },
    }
    assert MedicationRequest.model_validate(resource).model_dump(mode="json") == resource


@pytest.mark.django_db
def test_the_rx_number_identifies_the_request_and_groups_the_fills(order):
    Prescription.objects.filter(pk=order.prescription_id).update(rx_number="RX-104233")
    order = Order.objects.get(pk=order.pk)

    resource = medication_request_resource(order)

    rx_number = {"system": f"{PORTAL}/sid/rx-number", "value": "RX-104233"}
    assert resource["identifier"] == [
        {"system": f"{PORTAL}/sid/order-number", "value": order.number},
        rx_number,
    ]
    assert resource["groupIdentifier"] == rx_number


# The request's status for each of the order's: active while the pharmacy works on it.
REQUEST_STATUS = {
    OrderStatus.DRAFT: ("draft", None),
    OrderStatus.SUBMITTED: ("active", None),
    OrderStatus.IN_REVIEW: ("active", None),
    OrderStatus.ON_HOLD: ("on-hold", "On hold"),
    OrderStatus.VERIFIED: ("active", None),
    OrderStatus.REJECTED: ("cancelled", "Rejected"),
    OrderStatus.COMPOUNDING: ("active", None),
    OrderStatus.READY: ("active", None),
    OrderStatus.SHIPPED: ("completed", None),
    OrderStatus.DELIVERED: ("completed", None),
    OrderStatus.CANCELLED: ("cancelled", "Cancelled"),
}


def test_every_order_status_has_a_request_status():
    assert set(REQUEST_STATUS) == set(OrderStatus)


@pytest.mark.django_db
@pytest.mark.parametrize("status", list(REQUEST_STATUS))
def test_the_request_status_follows_the_order(order, status):
    Order.objects.filter(pk=order.pk).update(status=status)
    order.refresh_from_db()

    resource = medication_request_resource(order)

    expected_status, reason = REQUEST_STATUS[status]
    assert resource["status"] == expected_status
    assert resource["extension"][0]["valueCoding"]["code"] == status.value
    if reason is None:
        assert "statusReason" not in resource
    else:
        assert resource["statusReason"] == {
            "coding": [
                {
                    "system": f"{PORTAL}/CodeSystem/order-status",
                    "code": status.value,
                    "display": reason,
                }
            ],
            "text": reason,
        }


@pytest.mark.django_db
def test_the_medication_request_never_names_the_patient(order, patient):
    text = json.dumps(medication_request_resource(order))

    for personal in (
        patient.first_name,
        patient.last_name,
        patient.date_of_birth.isoformat(),
        patient.address_line1,
        patient.postal_code,
        str(patient.phone),
    ):
        assert personal not in text


@pytest.mark.django_db
def test_the_portals_medication_request_reads_back_as_the_same_order(order, prescriber, patient):
    """A clinic that sends back what the portal wrote orders the same regimen."""
    request = medication_request_resource(order)
    data = example()
    data["entry"][0]["resource"]["id"] = str(patient.pk)
    data["entry"][1]["resource"]["id"] = str(prescriber.pk)
    data["entry"][1]["resource"]["identifier"][0]["value"] = prescriber.npi
    data["entry"][2]["resource"] = request
    for entry in data["entry"][3:]:
        resource = entry["resource"]
        resource["patient" if "patient" in resource else "subject"] = {
            "reference": f"Patient/{patient.pk}"
        }

    read = parse_bundle(data)

    assert read.regimen == TITRATION
    assert (read.npi, read.diagnosis_codes, read.ship_to) == (prescriber.npi, ("M79.7",), "clinic")
    assert read.reason_for_compounding == "Strength not available commercially"
