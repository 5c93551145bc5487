"""FHIR R4B for the partner API: a clinic's EHR orders LDN with a Bundle, the portal answers with
an OperationOutcome, and shows an order as a MedicationRequest.

Pure mapping: no views, no writes. parse_bundle() turns a Bundle into a FhirOrder in the portal's
terms, or raises FhirInputError listing every problem found, each with the FHIRPath of the
element it concerns. operation_outcome() says what the dose rules found (or why the input was
refused); medication_request_resource() shows an order. Every resource, in and out, is validated
by the R4B models of fhir.resources. The dose rules themselves are not run here: the caller runs
them (orders.checks) on the FhirOrder, as the order form does on what a prescriber typed.

What the portal defines, under its own namespace (PORTAL_FHIR):
- StructureDefinition/takes-opioids (Patient, valueBoolean, required): naltrexone is
  contraindicated with opioids, so the portal never guesses the answer.
- StructureDefinition/pregnant-or-breastfeeding, /liver-disease (Patient, valueBoolean,
  optional, false when absent): the patient record's two other yes/no questions.
- StructureDefinition/ship-to (MedicationRequest.dispenseRequest, valueCode clinic | patient,
  optional, clinic when absent).
- StructureDefinition/acknowledged-warning (MedicationRequest, valueCode, repeating): a warning
  the prescriber confirms, by its code (CodeSystem/finding); /acknowledgement-reason
  (valueString): the reason some warnings need (duplicate therapy, an early refill).
- StructureDefinition/order-status (valueCoding from CodeSystem/order-status) and /fill-number
  (valueUnsignedInt): the order behind a MedicationRequest the portal shows.
- CodeSystem/dosage-form (capsule | oral_liquid | sublingual_drops | topical_cream),
  CodeSystem/finding (the dose rules' codes), sid/order-number, sid/rx-number.
"""

import datetime
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django import forms
from django.core.exceptions import ValidationError
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatientResource
from fhir.resources.R4B.practitioner import Practitioner
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError as PydanticValidationError

from prescribers.npi import validate_npi

from . import icd10
from .checks import finding_key, prescription_regimen
from .dosing import DosageForm, Finding, Regimen, Severity, Step
from .medications import Group, mentions
from .models import Order, OrderStatus, Patient, Sex, ShipTo, TimeOfDay
from .order_input import COUNT_RANGE, DOSE_DIGITS, MAX_STEPS, QUANTITY_DIGITS

# --- Systems and the portal's own definitions -----------------------------------------------------

PORTAL_FHIR = "https://ldn-portal.example/fhir"
TAKES_OPIOIDS_URL = f"{PORTAL_FHIR}/StructureDefinition/takes-opioids"
PREGNANT_OR_BREASTFEEDING_URL = f"{PORTAL_FHIR}/StructureDefinition/pregnant-or-breastfeeding"
LIVER_DISEASE_URL = f"{PORTAL_FHIR}/StructureDefinition/liver-disease"
SHIP_TO_URL = f"{PORTAL_FHIR}/StructureDefinition/ship-to"
ACKNOWLEDGED_WARNING_URL = f"{PORTAL_FHIR}/StructureDefinition/acknowledged-warning"
ACKNOWLEDGEMENT_REASON_URL = f"{PORTAL_FHIR}/StructureDefinition/acknowledgement-reason"
ORDER_STATUS_URL = f"{PORTAL_FHIR}/StructureDefinition/order-status"
FILL_NUMBER_URL = f"{PORTAL_FHIR}/StructureDefinition/fill-number"
FINDING_SYSTEM = f"{PORTAL_FHIR}/CodeSystem/finding"
DOSAGE_FORM_SYSTEM = f"{PORTAL_FHIR}/CodeSystem/dosage-form"
ORDER_STATUS_SYSTEM = f"{PORTAL_FHIR}/CodeSystem/order-status"
ORDER_NUMBER_SYSTEM = f"{PORTAL_FHIR}/sid/order-number"
RX_NUMBER_SYSTEM = f"{PORTAL_FHIR}/sid/rx-number"

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM_SYSTEM = "http://unitsofmeasure.org"
SNOMED_SYSTEM = "http://snomed.info/sct"
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"  # MR: medical record
DRUG_FORM_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"

MEDICATION_ID = "naltrexone"  # the contained Medication of the resources the portal writes

# HL7 v3 orderableDrugForm codes that name exactly one of the pharmacy's forms. Extended-release
# and enteric-coated capsules (ERCAP, ENTCAP, ...) are not among them: LDN is never slow-release
# (LDN Research Trust), and no v3 code means sublingual drops.
_V3_DRUG_FORMS = {
    "CAP": DosageForm.CAPSULE,
    "ORCAP": DosageForm.CAPSULE,
    "ORALSOL": DosageForm.ORAL_LIQUID,
    "CRM": DosageForm.TOPICAL_CREAM,
    "TOPCRM": DosageForm.TOPICAL_CREAM,
}
# SNOMED CT situations that say there is no allergy to record; the portal writes "NKDA", as its
# form asks a prescriber to.
_NO_KNOWN_ALLERGY = {"409137002", "716186003"}  # no known drug allergy; no known allergy
NO_KNOWN_DRUG_ALLERGY = "NKDA"
# Drugs sold combined with naltrexone (Contrave): the pharmacy compounds naltrexone alone.
_OTHER_ACTIVE = re.compile(r"\b(bupropion|contrave)\b", re.IGNORECASE)

_GENDER_TO_SEX = {
    "female": Sex.FEMALE.value,
    "male": Sex.MALE.value,
    "other": Sex.UNSPECIFIED.value,
    "unknown": Sex.UNSPECIFIED.value,
}
_WHEN_TO_TIME = {  # timing.repeat.when (v3 TimingEvent)
    "HS": TimeOfDay.BEDTIME.value,
    "MORN": TimeOfDay.MORNING.value,
    "MORN.early": TimeOfDay.MORNING.value,
    "MORN.late": TimeOfDay.MORNING.value,
}
_TIME_TO_WHEN = {TimeOfDay.BEDTIME.value: "HS", TimeOfDay.MORNING.value: "MORN"}
_DAYS_PER_UNIT = {"d": 1, "wk": 7}  # UCUM units of a step's or a supply's length
_CAPSULE_UNITS = {"{capsule}", "{capsules}", "capsule", "capsules", "cap", "caps"}
_ML_UNITS = {"ml"}  # compared lower-case
_INACTIVE_CLINICAL = {"inactive", "resolved"}
_NOT_VERIFIED = {"refuted", "entered-in-error"}
_NOT_TAKEN_NOW = {"stopped", "completed", "entered-in-error", "not-taken"}

# Numbers within the limits the order form and the JSON API take; Django's own fields give the
# messages ("Ensure that there are no more than 3 decimal places.").
_DOSE = forms.DecimalField(**DOSE_DIGITS)
_QUANTITY = forms.DecimalField(**QUANTITY_DIGITS)
_COUNT = forms.IntegerField(**COUNT_RANGE)

# The resources a Bundle may hold; the first three exactly once.
_RESOURCE_MODELS: dict[str, type[FHIRAbstractModel]] = {
    "Patient": FhirPatientResource,
    "Practitioner": Practitioner,
    "MedicationRequest": MedicationRequest,
    "Medication": Medication,
    "AllergyIntolerance": AllergyIntolerance,
    "MedicationStatement": MedicationStatement,
    "Condition": Condition,
}
_EXACTLY_ONE = ("Patient", "Practitioner", "MedicationRequest")
_BUNDLE_TYPES = ("transaction", "collection")


# --- What parse_bundle gives ----------------------------------------------------------------------


class Issue(NamedTuple):
    """A problem with the input, as an OperationOutcome issue says it."""

    severity: str  # error
    code: str  # invalid | required | structure
    expression: str  # FHIRPath of the element: "Bundle.entry[2].resource.dispenseRequest"
    message: str


class FhirInputError(Exception):
    """The Bundle cannot be read as an order: every problem found, not only the first."""

    def __init__(self, issues: Iterable[Issue]):
        self.issues = list(issues)
        super().__init__(self.issues)


@dataclass(frozen=True)
class FhirPatient:
    """The patient in the portal's terms (Patient.EDITABLE_FIELDS), and their EHR identifier."""

    first_name: str
    last_name: str
    date_of_birth: datetime.date
    sex: str  # Sex
    phone: str
    address_line1: str
    address_line2: str
    city: str
    state: str
    postal_code: str
    allergies: str
    current_medications: str
    takes_opioids: bool
    conditions: tuple[str, ...] = ()
    pregnant_or_breastfeeding: bool = False
    liver_disease: bool = False
    mrn: str = ""  # the clinic's medical record number, when the Bundle gives one
    mrn_system: str = ""

    def editable_fields(self) -> dict:
        """What the patient form takes, by the model's field names."""
        values = {name: getattr(self, name) for name in Patient.EDITABLE_FIELDS}
        return {**values, "conditions": list(self.conditions)}


@dataclass(frozen=True)
class FhirPaths:
    """Where an order's parts are in what was sent, so that findings point into it. The default
    names each resource by its type ("MedicationRequest.dispenseRequest.quantity")."""

    patient: str = "Patient"
    medication_request: str = "MedicationRequest"
    medication: str = "Medication"
    steps: tuple[str, ...] = ()  # each step's dosageInstruction, in the order of the steps
    bundle: str = ""  # "Bundle" when the order came in one


@dataclass(frozen=True)
class FhirOrder:
    """An order as a clinic's EHR sent it, in the portal's terms."""

    patient: FhirPatient
    npi: str
    regimen: Regimen
    diagnosis_codes: tuple[str, ...]
    reason_for_compounding: str
    ship_to: str  # ShipTo
    acknowledged_warnings: tuple[str, ...] = ()  # finding codes
    acknowledgement_reason: str = ""
    paths: FhirPaths = field(default_factory=FhirPaths)

    def acknowledged_keys(self, findings: Iterable[Finding]) -> list[str]:
        """The keys (checks.finding_key) of the warnings among `findings` whose code the
        prescriber acknowledged: what order_submit takes as `acknowledged`."""
        codes = set(self.acknowledged_warnings)
        return [
            finding_key(finding)
            for finding in findings
            if finding.severity == Severity.WARNING and finding.code in codes
        ]


# --- Reading a Bundle -----------------------------------------------------------------------------


class _Issues:
    """The problems found so far; the same element is reported once for the same kind."""

    def __init__(self):
        self.found: list[Issue] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, code: str, expression: str, message: str) -> None:
        if (code, expression) not in self._seen:
            self._seen.add((code, expression))
            self.found.append(Issue("error", code, expression, message))

    def invalid(self, expression: str, message: str) -> None:
        self.add("invalid", expression, message)

    def required(self, expression: str, message: str) -> None:
        self.add("required", expression, message)

    def structure(self, expression: str, message: str) -> None:
        self.add("structure", expression, message)


@dataclass
class _Entry:
    index: int
    path: str  # "Bundle.entry[0].resource"
    full_url: str
    resource_type: str
    model: FHIRAbstractModel | None  # None: the resource is invalid (its issues are reported)


def parse_bundle(data) -> FhirOrder:
    """A Bundle (parsed JSON) -> FhirOrder. Raises FhirInputError with every problem found."""
    issues = _Issues()
    entries = _read_bundle(data, issues)
    if entries is None:
        raise FhirInputError(issues.found)
    patient_entry, practitioner, request_entry = (
        _the_one(entries, name, issues) for name in _EXACTLY_ONE
    )
    valid = [entry for entry in entries if entry.model is not None]
    # Each resource is read once it is valid FHIR; an invalid one's issues say what to fix.
    patient = _read_patient(patient_entry, valid, issues) if _readable(patient_entry) else None
    npi = _read_npi(practitioner, issues) if _readable(practitioner) else None
    request = None
    if _readable(request_entry):
        request = _RequestReader(request_entry, valid, issues).read(patient_entry, practitioner)
    if issues.found or patient is None or npi is None or request is None:
        raise FhirInputError(issues.found)
    return FhirOrder(patient=patient, npi=npi, **request)


def _read_bundle(data, issues: _Issues) -> list[_Entry] | None:
    if not isinstance(data, dict):
        issues.structure("Bundle", "Send a FHIR Bundle as a JSON object.")
        return None
    resource_type = data.get("resourceType")
    if resource_type != "Bundle":
        if resource_type is None:
            issues.required("Bundle.resourceType", 'Send resourceType "Bundle".')
        else:
            issues.invalid("Bundle.resourceType", 'Send a Bundle (resourceType "Bundle").')
        return None
    raw_entries = data.get("entry")
    shell = dict(data)
    if isinstance(raw_entries, list):  # the resources are validated one by one, below
        shell["entry"] = [
            {key: value for key, value in item.items() if key != "resource"}
            if isinstance(item, dict)
            else item
            for item in raw_entries
        ]
    _validated(Bundle, shell, "Bundle", issues)
    kind = data.get("type")
    if kind is None:
        issues.required("Bundle.type", 'Send type "transaction" or "collection".')
    elif kind not in _BUNDLE_TYPES:
        issues.invalid("Bundle.type", 'Send type "transaction" or "collection".')
    if not isinstance(raw_entries, list):
        return []  # none: each missing resource is reported; else the validation said why
    entries = []
    for index, item in enumerate(raw_entries):
        entry = _read_entry(index, item, issues)
        if entry is not None:
            entries.append(entry)
    return entries


def _read_entry(index: int, item, issues: _Issues) -> _Entry | None:
    if not isinstance(item, dict):
        return None  # the Bundle's validation said so
    path = f"Bundle.entry[{index}].resource"
    resource = item.get("resource")
    if resource is None:
        issues.required(path, "Send a resource in each entry.")
        return None
    if not isinstance(resource, dict):
        issues.structure(path, "Send each resource as a JSON object.")
        return None
    resource_type = resource.get("resourceType")
    model_class = _RESOURCE_MODELS.get(resource_type) if isinstance(resource_type, str) else None
    if model_class is None:
        if resource_type is None:
            issues.required(f"{path}.resourceType", "Send the resource's resourceType.")
        else:
            message = f"The portal reads {', '.join(_RESOURCE_MODELS)} resources, not this one."
            issues.invalid(f"{path}.resourceType", message)
        return None
    model = None
    if _contained_readable(resource, path, issues):
        model = _validated(model_class, resource, path, issues)
    full_url = item.get("fullUrl")
    return _Entry(index, path, full_url if isinstance(full_url, str) else "", resource_type, model)


def _contained_readable(resource: dict, path: str, issues: _Issues) -> bool:
    """Only a MedicationRequest may contain resources, and only its Medication."""
    contained = resource.get("contained")
    if contained is None or not isinstance(contained, list):
        return True  # absent, or the resource's validation says what is wrong
    if resource["resourceType"] != "MedicationRequest":
        message = "The portal reads contained resources only in a MedicationRequest."
        issues.structure(f"{path}.contained", message)
        return False
    readable = True
    for index, item in enumerate(contained):
        if not isinstance(item, dict) or item.get("resourceType") != "Medication":
            message = "A MedicationRequest may contain only its Medication."
            issues.structure(f"{path}.contained[{index}]", message)
            readable = False
    return readable


def _validated(model_class, raw: dict, path: str, issues: _Issues):
    """The resource as its R4B model, or None after reporting why it is not one."""
    before = len(issues.found)
    try:
        model = model_class.model_validate(raw)
        _check_json_types(model, raw, path, issues)
    except PydanticValidationError as error:
        for detail in error.errors(include_url=False):
            _pydantic_issue(path, detail, model_class, issues)
        return None
    except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError):
        # fhir.resources raises these for some shapes it does not expect (an unknown type of a
        # nested resource, extensions nested hundreds deep): a refusal, never a server error.
        message = f"This cannot be read as a FHIR R4B {model_class.__name__}."
        issues.structure(path, message)
        return None
    return model if len(issues.found) == before else None


def _pydantic_issue(path: str, detail: dict, model_class, issues: _Issues) -> None:
    expression = path
    for part in detail.get("loc", ()):
        if isinstance(part, int):
            expression += f"[{part}]"
        elif part == "resource_type":
            expression += ".resourceType"
        elif part != "root":  # fhir.resources' own name for "this element itself"
            expression += f".{part}"
    kind = str(detail.get("type", ""))
    if kind in ("missing", "model_field_validation.missing"):
        issues.required(expression, "This element is required.")
    elif kind == "extra_forbidden":
        message = f"This is not an element of FHIR R4B {model_class.__name__}."
        issues.structure(expression, message)
    elif kind in ("model_validation_format", "dict_type", "model_type"):
        issues.structure(expression, "Send this element as a JSON object.")
    elif kind == "list_type":
        issues.structure(expression, " ".join(str(detail.get("msg", "")).split()))
    else:
        message = " ".join(str(detail.get("msg", "")).split())
        issues.invalid(expression, message.removeprefix("Value error, "))


@functools.cache
def _field_names(model_class) -> dict[str, str]:
    """JSON name -> the model's attribute name ("_birthDate" -> "birthDate__ext")."""
    return {info.alias or name: name for name, info in model_class.model_fields.items()}


def _check_json_types(model, raw: dict, path: str, issues: _Issues) -> None:
    """FHIR JSON writes numbers and booleans as JSON numbers and booleans, and text as strings;
    the models accept "1.5", "yes" or a number for a date. Those are refused here."""
    names = _field_names(type(model))
    for key, raw_value in raw.items():
        name = names.get(key)
        if name is not None:
            _check_json_value(getattr(model, name, None), raw_value, f"{path}.{key}", issues)


def _check_json_value(value, raw_value, path: str, issues: _Issues) -> None:
    if isinstance(value, list):
        if isinstance(raw_value, list):
            for index, (item, raw_item) in enumerate(zip(value, raw_value, strict=False)):
                _check_json_value(item, raw_item, f"{path}[{index}]", issues)
    elif isinstance(value, FHIRAbstractModel):
        if isinstance(raw_value, dict):
            _check_json_types(value, raw_value, path, issues)
        else:
            issues.structure(path, "Send this element as a JSON object.")
    elif isinstance(value, bool):
        if not isinstance(raw_value, bool):
            issues.invalid(path, "Send true or false (a JSON boolean).")
    elif isinstance(value, int | Decimal):
        if isinstance(raw_value, bool) or not isinstance(raw_value, int | float | Decimal):
            issues.invalid(path, "Send a JSON number.")
    elif isinstance(value, str | datetime.date | datetime.time) and not isinstance(raw_value, str):
        issues.invalid(path, "Send a JSON string.")


def _the_one(entries: list[_Entry], resource_type: str, issues: _Issues) -> _Entry | None:
    found = [entry for entry in entries if entry.resource_type == resource_type]
    if not found:
        expression = f"Bundle.entry.resource.ofType({resource_type})"
        issues.required(expression, f"Send exactly one {resource_type} entry.")
        return None
    for extra in found[1:]:
        issues.invalid(extra.path, f"Send exactly one {resource_type} entry.")
    return found[0]


def _refers_to(reference, entry: _Entry | None) -> bool:
    """Whether a Reference names the entry: by its fullUrl, or as Type/id."""
    if reference is None or entry is None or entry.model is None:
        return False
    target = reference.reference
    if not target:
        return False
    own_id = getattr(entry.model, "id", None)
    return target == entry.full_url or (
        own_id is not None and target == f"{entry.resource_type}/{own_id}"
    )


def _readable(entry: _Entry | None) -> bool:
    return entry is not None and entry.model is not None


def _resolve(reference, entries: list[_Entry], resource_type: str) -> _Entry | None:
    for entry in entries:
        if entry.resource_type == resource_type and _refers_to(reference, entry):
            return entry
    return None


def _names(concept) -> list[str]:
    """A CodeableConcept's text and its codings' displays: what it is called."""
    if concept is None:
        return []
    names = [concept.text] if concept.text else []
    names += [coding.display for coding in concept.coding or () if coding and coding.display]
    return [name.strip() for name in names if name.strip()]


def _extensions(owner, url: str, path: str) -> list[tuple[str, object]]:
    """(path, extension) of each of the owner's extensions with this url."""
    return [
        (f"{path}.extension[{index}]", extension)
        for index, extension in enumerate(owner.extension or ())
        if extension is not None and extension.url == url
    ]


def _one_extension(owner, url: str, path: str, issues: _Issues):
    found = _extensions(owner, url, path)
    for extra_path, _ in found[1:]:
        issues.invalid(extra_path, f"Send the extension {url} once.")
    return found[0] if found else (None, None)


def _boolean_extension(owner, url: str, path: str, issues: _Issues) -> bool | None:
    where, extension = _one_extension(owner, url, path, issues)
    if extension is None:
        return None
    if extension.valueBoolean is None:
        issues.invalid(where, "Send valueBoolean: true or false.")
    return extension.valueBoolean


def _number(value, django_field: forms.Field, path: str, issues: _Issues):
    """The value checked as the order form checks it (digits, range, whole numbers)."""
    try:
        return django_field.clean(format(value, "f") if isinstance(value, Decimal) else value)
    except ValidationError as error:
        issues.invalid(path, " ".join(error.messages))
        return None


def _unit(quantity) -> str:
    """A Quantity's unit: its UCUM code, else its human unit."""
    if quantity.code and quantity.system in (None, UCUM_SYSTEM):
        return quantity.code.strip()
    return (quantity.unit or "").strip()


def _days(duration, path: str, issues: _Issues) -> int | None:
    """A Duration in days or weeks, as whole days."""
    if duration.value is None:
        issues.required(f"{path}.value", "Send the number of days.")
        return None
    per_unit = _DAYS_PER_UNIT.get(_unit(duration))
    if per_unit is None:
        issues.invalid(path, "Send the length in days (UCUM code d) or weeks (wk).")
        return None
    try:
        days = duration.value * per_unit
    except ArithmeticError:  # an exponent beyond Decimal's range
        days = duration.value
    return _number(days, _COUNT, f"{path}.value", issues)


# --- The patient ----------------------------------------------------------------------------------


def _read_patient(entry: _Entry, entries: list[_Entry], issues: _Issues) -> FhirPatient | None:
    patient, at = entry.model, entry.path
    before = len(issues.found)
    first_name, last_name = _read_name(patient, at, issues)
    born = patient.birthDate
    if born is None:
        issues.required(f"{at}.birthDate", "Send the patient's date of birth.")
    elif not isinstance(born, datetime.date):  # a year, or a year and month
        issues.invalid(f"{at}.birthDate", "Send the full date of birth, YYYY-MM-DD.")
    sex = _GENDER_TO_SEX.get(patient.gender or "unknown")
    if sex is None:
        issues.invalid(f"{at}.gender", "Send one of: female, male, other, unknown.")
    phone = _read_phone(patient, at, issues)
    address = _read_address(patient, at, issues)
    takes_opioids = _boolean_extension(patient, TAKES_OPIOIDS_URL, at, issues)
    if takes_opioids is None and not _extensions(patient, TAKES_OPIOIDS_URL, at):
        message = "Say whether the patient currently takes any opioid: naltrexone cannot be "
        message += f"given with opioids (extension {TAKES_OPIOIDS_URL}, valueBoolean)."
        issues.required(f"{at}.extension('{TAKES_OPIOIDS_URL}')", message)
    pregnant = _boolean_extension(patient, PREGNANT_OR_BREASTFEEDING_URL, at, issues)
    liver = _boolean_extension(patient, LIVER_DISEASE_URL, at, issues)
    mrn, mrn_system = _read_mrn(patient)
    allergies = _read_allergies(entry, entries, issues)
    medications = _read_medications(entry, entries, issues)
    conditions = _read_conditions(entry, entries, issues)
    if len(issues.found) > before:
        return None
    return FhirPatient(
        first_name=first_name,
        last_name=last_name,
        date_of_birth=born,
        sex=sex,
        phone=phone,
        **address,
        allergies=allergies,
        current_medications=medications,
        takes_opioids=takes_opioids,
        conditions=conditions,
        pregnant_or_breastfeeding=bool(pregnant),
        liver_disease=bool(liver),
        mrn=mrn,
        mrn_system=mrn_system,
    )


def _preferred(items, path: str, *, use: str) -> tuple[str, object] | tuple[None, None]:
    """(path, item) of the first current item of that use, else the first current one."""
    current = [
        (f"{path}[{index}]", item)
        for index, item in enumerate(items or ())
        if item is not None and item.use != "old"
    ]
    chosen = [pair for pair in current if pair[1].use == use] or current
    return chosen[0] if chosen else (None, None)


def _read_name(patient, at: str, issues: _Issues) -> tuple[str, str]:
    where, name = _preferred(patient.name, f"{at}.name", use="official")
    if name is None:
        issues.required(f"{at}.name", "Send the patient's name (family and given).")
        return "", ""
    family = (name.family or "").strip()
    given = " ".join(part.strip() for part in name.given or () if part and part.strip())
    if not family:
        issues.required(f"{where}.family", "Send the patient's family name.")
    if not given:
        issues.required(f"{where}.given", "Send the patient's given name.")
    return given, family


def _read_phone(patient, at: str, issues: _Issues) -> str:
    phones = [
        (item.rank or 2**31, index, item.value.strip())
        for index, item in enumerate(patient.telecom or ())
        if item is not None and item.system == "phone" and item.use != "old"
        if item.value and item.value.strip()
    ]
    if not phones:
        issues.required(f"{at}.telecom", "Send the patient's phone number (system phone).")
        return ""
    return min(phones)[2]


def _read_address(patient, at: str, issues: _Issues) -> dict[str, str]:
    where, address = _preferred(patient.address, f"{at}.address", use="home")
    if address is None:
        issues.required(f"{at}.address", "Send the patient's address (the portal ships there).")
        return {}
    lines = [line.strip() for line in address.line or () if line and line.strip()]
    values = {
        "address_line1": lines[0] if lines else "",
        "address_line2": ", ".join(lines[1:]),
        "city": (address.city or "").strip(),
        "state": (address.state or "").strip(),
        "postal_code": (address.postalCode or "").strip(),
    }
    for name, element, what in (
        ("address_line1", "line", "the street address"),
        ("city", "city", "the city"),
        ("state", "state", "the state"),
        ("postal_code", "postalCode", "the ZIP code"),
    ):
        if not values[name]:
            issues.required(f"{where}.{element}", f"Send {what} of the patient's address.")
    return values


def _read_mrn(patient) -> tuple[str, str]:
    for identifier in patient.identifier or ():
        codings = identifier.type.coding or () if identifier and identifier.type else ()
        medical_record = any(
            coding and coding.system == IDENTIFIER_TYPE_SYSTEM and coding.code == "MR"
            for coding in codings
        )
        if medical_record and identifier.value and identifier.value.strip():
            return identifier.value.strip(), identifier.system or ""
    return "", ""


def _current(resource) -> bool:
    """Not refuted, entered in error, inactive or resolved (AllergyIntolerance, Condition)."""
    codes = {
        coding.code
        for status in (resource.clinicalStatus, resource.verificationStatus)
        if status is not None
        for coding in status.coding or ()
        if coding is not None
    }
    return not codes & (_INACTIVE_CLINICAL | _NOT_VERIFIED)


def _of_type(entries: list[_Entry], resource_type: str) -> list[_Entry]:
    return [entry for entry in entries if entry.resource_type == resource_type]


def _read_allergies(patient: _Entry, entries: list[_Entry], issues: _Issues) -> str:
    """One line per current allergy, with its reactions: "Penicillin (hives)"; "NKDA" for the
    SNOMED CT "no known (drug) allergy". The portal needs an answer, as its form does."""
    lines, before = [], len(issues.found)
    for entry in _of_type(entries, "AllergyIntolerance"):
        allergy = entry.model
        if not _refers_to(allergy.patient, patient):
            issues.invalid(f"{entry.path}.patient", "Refer to the Patient entry of this Bundle.")
            continue
        if not _current(allergy):
            continue
        codes = allergy.code.coding or () if allergy.code else ()
        if any(c and c.system == SNOMED_SYSTEM and c.code in _NO_KNOWN_ALLERGY for c in codes):
            lines.append(NO_KNOWN_DRUG_ALLERGY)
            continue
        names = _names(allergy.code)
        if not names:
            issues.required(f"{entry.path}.code", "Name the substance (code.text or display).")
            continue
        reactions = [
            name
            for reaction in allergy.reaction or ()
            if reaction is not None
            for manifestation in reaction.manifestation or ()
            for name in _names(manifestation)[:1]
        ]
        lines.append(f"{names[0]} ({', '.join(reactions)})" if reactions else names[0])
    if not lines and len(issues.found) == before:
        message = "Send the patient's current allergies as AllergyIntolerance entries (SNOMED CT "
        message += '409137002 "No known drug allergy" when there are none).'
        issues.required("Bundle.entry.resource.ofType(AllergyIntolerance)", message)
    return "\n".join(dict.fromkeys(lines))


def _read_medications(patient: _Entry, entries: list[_Entry], issues: _Issues) -> str:
    """One line per medication the patient takes now: "Vitamin D3 (2000 IU daily)"."""
    lines = []
    for entry in _of_type(entries, "MedicationStatement"):
        statement = entry.model
        if not _refers_to(statement.subject, patient):
            issues.invalid(f"{entry.path}.subject", "Refer to the Patient entry of this Bundle.")
            continue
        if statement.status in _NOT_TAKEN_NOW:
            continue
        names = _names(statement.medicationCodeableConcept)
        if statement.medicationReference is not None:
            medication = _resolve(statement.medicationReference, entries, "Medication")
            names = _names(medication.model.code) if medication is not None else []
        if not names:
            message = "Name the medication (medicationCodeableConcept.text, or a Medication "
            message += "entry of this Bundle with its code)."
            issues.required(f"{entry.path}.medication", message)
            continue
        doses = [d.text.strip() for d in statement.dosage or () if d and d.text and d.text.strip()]
        lines.append(f"{names[0]} ({'; '.join(doses)})" if doses else names[0])
    return "\n".join(lines)


def _read_conditions(patient: _Entry, entries: list[_Entry], issues: _Issues) -> tuple[str, ...]:
    """The problem list, as ICD-10-CM codes: the dose rules read codes (Hashimoto's E06.3,
    transplant Z94), so a condition without one cannot be read."""
    codes = []
    for entry in _of_type(entries, "Condition"):
        condition = entry.model
        if not _refers_to(condition.subject, patient):
            issues.invalid(f"{entry.path}.subject", "Refer to the Patient entry of this Bundle.")
            continue
        if not _current(condition):
            continue
        found = _icd10_codes(condition.code, f"{entry.path}.code", issues)
        if not found:
            message = f"Code the condition in ICD-10-CM (system {ICD10CM_SYSTEM})."
            issues.required(f"{entry.path}.code", message)
        codes.extend(found)
    return tuple(dict.fromkeys(codes))


def _icd10_codes(concept, path: str, issues: _Issues, *, check: bool = True) -> list[str]:
    codes = []
    for index, coding in enumerate(concept.coding or () if concept else ()):
        if coding is None or coding.system != ICD10CM_SYSTEM or not coding.code:
            continue
        code = icd10.normalize_code(coding.code)
        if check and not icd10.is_code(code):
            issues.invalid(f"{path}.coding[{index}].code", f"Not an ICD-10-CM code: {code}.")
            continue
        codes.append(code)
    return codes


def _read_npi(entry: _Entry, issues: _Issues) -> str | None:
    at = entry.path
    npis = [
        (f"{at}.identifier[{index}]", identifier)
        for index, identifier in enumerate(entry.model.identifier or ())
        if identifier is not None and identifier.system == NPI_SYSTEM
    ]
    if not npis:
        message = f"Send the prescriber's NPI (identifier with system {NPI_SYSTEM})."
        issues.required(f"{at}.identifier", message)
        return None
    values = {(identifier.value or "").strip() for _, identifier in npis}
    if len(values) > 1:
        issues.invalid(npis[1][0], "Send one NPI for the prescriber.")
        return None
    where, identifier = npis[0]
    npi = (identifier.value or "").strip()
    try:
        validate_npi(npi)
    except ValidationError as error:
        issues.invalid(f"{where}.value", " ".join(error.messages))
        return None
    return npi


# --- The prescription -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timing:
    days: int | None
    doses_per_day: int | None
    time_of_day: str | None


class _RequestReader:
    """The MedicationRequest: the medication, the schedule, the supply, the reasons."""

    def __init__(self, entry: _Entry, entries: list[_Entry], issues: _Issues):
        self.request, self.at = entry.model, entry.path
        self.entries, self.issues = entries, issues

    def read(self, patient: _Entry | None, practitioner: _Entry | None) -> dict | None:
        request, at, issues = self.request, self.at, self.issues
        before = len(issues.found)
        if request.status != "active":
            issues.invalid(f"{at}.status", 'Send status "active": the portal fills prescriptions.')
        if request.intent not in ("order", "original-order"):
            issues.invalid(f"{at}.intent", 'Send intent "order".')
        # A reference to an invalid resource is not judged: that resource's issues say why.
        if _readable(patient) and not _refers_to(request.subject, patient):
            issues.invalid(f"{at}.subject", "Refer to the Patient entry of this Bundle.")
        if request.requester is None:
            issues.required(f"{at}.requester", "Refer to the Practitioner entry of this Bundle.")
        elif _readable(practitioner) and not _refers_to(request.requester, practitioner):
            issues.invalid(f"{at}.requester", "Refer to the Practitioner entry of this Bundle.")
        if request.doNotPerform:
            issues.invalid(f"{at}.doNotPerform", "A request not to dispense is not an order.")
        form, concentration, medication_path = self._medication()
        steps, step_paths, timing = self._schedule()
        supply = self._dispense_request(form)
        diagnosis_codes = self._diagnosis_codes()
        reason = "\n".join(
            note.text.strip()
            for note in request.note or ()
            if note is not None and note.text and note.text.strip()
        )
        if not reason:
            message = "Send the reason for compounding as a note (503A: a compounded "
            message += "preparation needs one, e.g. the strength is not made commercially)."
            issues.required(f"{at}.note", message)
        acknowledged, acknowledgement_reason = self._acknowledgements()
        if len(issues.found) > before or form is None or timing is None or supply is None:
            return None
        regimen = Regimen(
            dosage_form=form,
            steps=steps,
            doses_per_day=timing.doses_per_day,
            quantity=supply["quantity"],
            days_supply=supply["days_supply"],
            refills=supply["refills"],
            concentration_mg_per_ml=concentration if form != DosageForm.CAPSULE else None,
            time_of_day=timing.time_of_day,
        )
        return {
            "regimen": regimen,
            "diagnosis_codes": tuple(dict.fromkeys(diagnosis_codes)),
            "reason_for_compounding": reason,
            "ship_to": supply["ship_to"],
            "acknowledged_warnings": acknowledged,
            "acknowledgement_reason": acknowledgement_reason,
            "paths": FhirPaths(
                patient=patient.path if patient is not None else "Patient",
                medication_request=at,
                medication=medication_path,
                steps=step_paths,
                bundle="Bundle",
            ),
        }

    def _diagnosis_codes(self) -> list[str]:
        """The ICD-10-CM codings of reasonCode, and of the Conditions reasonReference names.
        The dose rules check the codes (icd10.check_diagnosis_codes), as for the order form."""
        request, at = self.request, self.at
        codes = []
        for index, concept in enumerate(request.reasonCode or ()):
            path = f"{at}.reasonCode[{index}]"
            codes += _icd10_codes(concept, path, self.issues, check=False)
        for index, reference in enumerate(request.reasonReference or ()):
            condition = _resolve(reference, self.entries, "Condition")
            if condition is None:
                message = "Refer to a Condition entry of this Bundle."
                self.issues.invalid(f"{at}.reasonReference[{index}]", message)
                continue
            path = f"{condition.path}.code"
            codes += _icd10_codes(condition.model.code, path, self.issues, check=False)
        return codes

    # The medication: naltrexone alone, in one of the pharmacy's forms.

    def _medication(self) -> tuple[DosageForm | None, Decimal | None, str]:
        request, at, issues = self.request, self.at, self.issues
        medication, path = None, f"{at}.medicationCodeableConcept"
        concept = request.medicationCodeableConcept
        if request.medicationReference is not None:
            medication, path = self._referenced_medication(request.medicationReference)
            if medication is None:
                message = "Refer to a contained Medication (#id) or a Medication entry of this "
                message += "Bundle."
                issues.invalid(f"{at}.medicationReference", message)
                return None, None, f"{at}.medicationReference"
            concept = medication.code
        code_path = f"{path}.code" if medication is not None else path
        if not _names_naltrexone_alone(_names(concept)):
            message = "The portal orders naltrexone only: name it, alone, in the medication's "
            message += "code (text or display)."
            issues.invalid(code_path, message)
        if medication is None:
            message = "Send the medication as a Medication (contained, or an entry of this "
            message += "Bundle) with its form: capsule, oral liquid, sublingual drops or cream."
            issues.required(f"{at}.medicationReference", message)
            return None, None, path
        form = self._form(medication, path)
        concentration = self._concentration(medication, path, form)
        return form, concentration, path

    def _referenced_medication(self, reference):
        target = reference.reference or ""
        if target.startswith("#"):
            for index, contained in enumerate(self.request.contained or ()):
                if isinstance(contained, Medication) and contained.id == target[1:]:
                    return contained, f"{self.at}.contained[{index}]"
            return None, ""
        entry = _resolve(reference, self.entries, "Medication")
        return (entry.model, entry.path) if entry is not None else (None, "")

    def _form(self, medication, path: str) -> DosageForm | None:
        forms_found = set()
        for coding in medication.form.coding or () if medication.form else ():
            if coding is None or not coding.code:
                continue
            if (
                coding.system == DOSAGE_FORM_SYSTEM
                and coding.code in DosageForm.__members__.values()
            ):
                forms_found.add(DosageForm(coding.code))
            elif coding.system == DRUG_FORM_SYSTEM and coding.code in _V3_DRUG_FORMS:
                forms_found.add(_V3_DRUG_FORMS[coding.code])
        if len(forms_found) == 1:
            return forms_found.pop()
        if forms_found:
            self.issues.invalid(f"{path}.form", "The form's codings name different forms.")
            return None
        message = f"Send the form as a coding of {DOSAGE_FORM_SYSTEM} ("
        message += f"{', '.join(DosageForm)}) or of {DRUG_FORM_SYSTEM} "
        message += f"({', '.join(_V3_DRUG_FORMS)})."
        self.issues.required(f"{path}.form", message)
        return None

    def _concentration(self, medication, path: str, form: DosageForm | None) -> Decimal | None:
        """A liquid's, drops' or cream's mg per mL: the naltrexone ingredient's strength. The
        pharmacy compounds naltrexone alone (excipients may be listed as inactive)."""
        issues = self.issues
        strength, strength_path = None, f"{path}.ingredient"
        for index, ingredient in enumerate(medication.ingredient or ()):
            if ingredient is None or ingredient.isActive is False:
                continue
            where = f"{path}.ingredient[{index}]"
            concept = ingredient.itemCodeableConcept
            if ingredient.itemReference is not None or not _names_naltrexone_alone(_names(concept)):
                message = "The pharmacy compounds naltrexone as the only active ingredient: "
                message += "name it in itemCodeableConcept, and mark others isActive false."
                issues.invalid(f"{where}.item", message)
            elif strength is None:
                strength, strength_path = ingredient.strength, f"{where}.strength"
        if form is None or form == DosageForm.CAPSULE:
            return None  # a capsule's strength is each step's dose
        if strength is None or strength.numerator is None or strength.numerator.value is None:
            message = "Send the concentration as the naltrexone ingredient's strength, in mg "
            message += "per mL."
            issues.required(strength_path, message)
            return None
        numerator, denominator = strength.numerator, strength.denominator
        per = denominator.value if denominator is not None else None
        if (
            _unit(numerator) != "mg"
            or denominator is None
            or _unit(denominator).lower() not in _ML_UNITS
            or per is None
            or per <= 0
        ):
            issues.invalid(strength_path, "Send the strength in mg (numerator) per mL.")
            return None
        try:
            concentration = numerator.value / per
        except ArithmeticError:  # an exponent beyond Decimal's range
            concentration = numerator.value
        return _number(concentration, _DOSE, strength_path, issues)

    # The schedule: one dosageInstruction per step, in the order of their sequence.

    def _schedule(self) -> tuple[tuple[Step, ...], tuple[str, ...], _Timing | None]:
        request, at, issues = self.request, self.at, self.issues
        instructions = [
            (f"{at}.dosageInstruction[{index}]", dosage)
            for index, dosage in enumerate(request.dosageInstruction or ())
            if dosage is not None
        ]
        if not instructions:
            message = "Send the schedule: a dosageInstruction for each step (dose and days)."
            issues.required(f"{at}.dosageInstruction", message)
            return (), (), None
        if len(instructions) > MAX_STEPS:
            issues.invalid(f"{at}.dosageInstruction", f"Send at most {MAX_STEPS} steps.")
            return (), (), None
        if len(instructions) > 1:
            seen: set[int] = set()
            for path, dosage in instructions:
                if dosage.sequence is None:
                    message = "Number the steps with sequence (1, 2, ...): a titration's steps "
                    message += "follow each other."
                    issues.required(f"{path}.sequence", message)
                elif dosage.sequence in seen:
                    message = "Two steps have this sequence: the portal's steps follow each "
                    message += "other, one at a time."
                    issues.invalid(f"{path}.sequence", message)
                else:
                    seen.add(dosage.sequence)
        ordered = sorted(instructions, key=lambda pair: pair[1].sequence or 0)
        steps, paths, timings = [], [], []
        for path, dosage in ordered:
            dose = self._dose(dosage, path)
            timing = self._timing(dosage, path)
            if dose is not None and timing is not None and timing.days is not None:
                steps.append(Step(dose_mg=dose, days=timing.days))
            paths.append(path)
            timings.append((path, timing))
        first = timings[0][1]
        for path, timing in timings[1:]:
            if (
                first is not None
                and timing is not None
                and (
                    (timing.doses_per_day, timing.time_of_day)
                    != (first.doses_per_day, first.time_of_day)
                )
            ):
                message = "Every step must have the same frequency and time of day as the "
                message += "first (the portal's schedule has one for all its steps)."
                issues.invalid(f"{path}.timing.repeat", message)
        if any(timing is None for _, timing in timings):
            return tuple(steps), tuple(paths), None
        return tuple(steps), tuple(paths), first

    def _dose(self, dosage, path: str) -> Decimal | None:
        issues = self.issues
        if dosage.asNeededBoolean or dosage.asNeededCodeableConcept is not None:
            issues.invalid(f"{path}.asNeeded", "LDN is taken every day, not as needed.")
        doses = [item for item in dosage.doseAndRate or () if item is not None]
        if len(doses) != 1 or doses[0].doseQuantity is None:
            message = "Send the step's dose as doseAndRate[0].doseQuantity, in mg (one dose)."
            if len(doses) > 1 or (doses and doses[0].doseRange is not None):
                issues.invalid(f"{path}.doseAndRate", message)
            else:
                issues.required(f"{path}.doseAndRate", message)
            return None
        quantity, where = doses[0].doseQuantity, f"{path}.doseAndRate[0].doseQuantity"
        if quantity.comparator is not None:
            issues.invalid(f"{where}.comparator", "Send the dose itself, without a comparator.")
        if _unit(quantity) != "mg":
            issues.invalid(where, "Send the dose in mg (UCUM code mg).")
            return None
        if quantity.value is None:
            issues.required(f"{where}.value", "Send the dose in mg.")
            return None
        return _number(quantity.value, _DOSE, f"{where}.value", issues)

    def _timing(self, dosage, path: str) -> _Timing | None:
        issues = self.issues
        repeat = dosage.timing.repeat if dosage.timing is not None else None
        where = f"{path}.timing.repeat"
        if repeat is None:
            message = "Send the step's timing.repeat: how many days (boundsDuration) and how "
            message += "often (frequency per period, or when)."
            issues.required(where, message)
            return None
        before = len(issues.found)
        if repeat.dayOfWeek:
            issues.invalid(f"{where}.dayOfWeek", "LDN is taken every day: send no dayOfWeek.")
        days = self._step_days(repeat, where)
        per_day = self._doses_per_day(repeat, where)
        whens = {_WHEN_TO_TIME.get(code, "") for code in repeat.when or () if code}
        if "" in whens or len(whens) > 1:
            message = "Send when as HS (at bedtime) or MORN (in the morning)."
            issues.invalid(f"{where}.when", message)
        time_of_day = whens.pop() if len(whens) == 1 else TimeOfDay.BEDTIME.value
        if len(issues.found) > before:
            return None
        return _Timing(days=days, doses_per_day=per_day, time_of_day=time_of_day)

    def _step_days(self, repeat, where: str) -> int | None:
        issues = self.issues
        if repeat.boundsDuration is not None:
            return _days(repeat.boundsDuration, f"{where}.boundsDuration", issues)
        period = repeat.boundsPeriod
        if period is not None:
            start, end = period.start, period.end
            if any(isinstance(day, datetime.datetime) or day is None for day in (start, end)):
                message = "Send the period's start and end as dates (YYYY-MM-DD)."
                issues.invalid(f"{where}.boundsPeriod", message)
                return None
            if end < start:
                issues.invalid(f"{where}.boundsPeriod", "The period ends before it starts.")
                return None
            days = (end - start).days + 1  # FHIR: a Period's end is inclusive
            return _number(days, _COUNT, f"{where}.boundsPeriod", issues)
        message = "Send how many days this step lasts (boundsDuration, in days)."
        if repeat.boundsRange is not None:
            issues.invalid(f"{where}.boundsRange", message)
        else:
            issues.required(f"{where}.boundsDuration", message)
        return None

    def _doses_per_day(self, repeat, where: str) -> int | None:
        """frequency per period in days; with no period, `when` repeats every day."""
        issues = self.issues
        frequency = repeat.frequency if repeat.frequency is not None else 1
        if repeat.period is None and repeat.periodUnit is None:
            if repeat.when:
                return _number(frequency, _COUNT, f"{where}.frequency", issues)
            message = "Say how often: frequency per period (1 per 1 d), or when (HS)."
            issues.required(f"{where}.period", message)
            return None
        if repeat.periodUnit != "d":
            issues.invalid(f"{where}.periodUnit", "Send the period in days (periodUnit d).")
            return None
        if repeat.period is None or repeat.period <= 0:
            issues.invalid(f"{where}.period", "Send a period of 1 day.")
            return None
        try:
            per_day = Decimal(frequency) / repeat.period
            whole = per_day == per_day.to_integral_value()
        except ArithmeticError:  # an exponent beyond Decimal's range
            whole = False
        if not whole:
            message = "Send a whole number of doses a day (frequency per 1 day)."
            issues.invalid(f"{where}.frequency", message)
            return None
        return _number(int(per_day), _COUNT, f"{where}.frequency", issues)

    # The supply: quantity, days, refills, where it ships.

    def _dispense_request(self, form: DosageForm | None) -> dict | None:
        request, issues = self.request, self.issues
        where = f"{self.at}.dispenseRequest"
        supply = request.dispenseRequest
        if supply is None:
            message = "Send dispenseRequest with quantity, expectedSupplyDuration and "
            message += "numberOfRepeatsAllowed (the refills)."
            issues.required(where, message)
            return None
        before = len(issues.found)
        quantity = self._quantity(supply.quantity, form, f"{where}.quantity")
        days_supply = None
        if supply.expectedSupplyDuration is None:
            message = "Send the days' supply (expectedSupplyDuration, in days)."
            issues.required(f"{where}.expectedSupplyDuration", message)
        else:
            days_supply = _days(
                supply.expectedSupplyDuration, f"{where}.expectedSupplyDuration", issues
            )
        refills = 0  # absent: no refills, the reading that never dispenses more than written
        if supply.numberOfRepeatsAllowed is not None:
            refills = _number(
                supply.numberOfRepeatsAllowed,
                _COUNT,
                f"{where}.numberOfRepeatsAllowed",
                issues,
            )
        ship_to = ShipTo.CLINIC.value
        place, extension = _one_extension(supply, SHIP_TO_URL, where, issues)
        if extension is not None:
            if extension.valueCode in ShipTo.values:
                ship_to = extension.valueCode
            else:
                issues.invalid(place, f"Send valueCode {' or '.join(ShipTo.values)}.")
        if len(issues.found) > before:
            return None
        return {
            "quantity": quantity,
            "days_supply": days_supply,
            "refills": refills,
            "ship_to": ship_to,
        }

    def _quantity(self, quantity, form: DosageForm | None, where: str) -> Decimal | None:
        issues = self.issues
        if quantity is None or quantity.value is None:
            message = "Send the quantity to dispense: capsules, or mL for a liquid, drops or "
            message += "cream."
            issues.required(where if quantity is None else f"{where}.value", message)
            return None
        unit = _unit(quantity).lower()
        if form == DosageForm.CAPSULE and unit and unit not in _CAPSULE_UNITS:
            issues.invalid(where, "Send the quantity in capsules (unit {capsule}).")
            return None
        if form not in (None, DosageForm.CAPSULE) and unit not in _ML_UNITS:
            issues.invalid(where, "Send the quantity in mL (UCUM code mL).")
            return None
        return _number(quantity.value, _QUANTITY, f"{where}.value", issues)

    def _acknowledgements(self) -> tuple[tuple[str, ...], str]:
        codes = []
        for where, extension in _extensions(self.request, ACKNOWLEDGED_WARNING_URL, self.at):
            code = (extension.valueCode or "").strip()
            if code:
                codes.append(code)
            else:
                message = "Send the code of the acknowledged warning as valueCode."
                self.issues.invalid(where, message)
        where, extension = _one_extension(
            self.request, ACKNOWLEDGEMENT_REASON_URL, self.at, self.issues
        )
        reason = ""
        if extension is not None:
            reason = (extension.valueString or "").strip()
            if not reason:
                self.issues.invalid(where, "Send the reason as valueString.")
        return tuple(dict.fromkeys(codes)), reason


def _names_naltrexone_alone(names: list[str]) -> bool:
    """Whether a medication's names say naltrexone, and no other drug with it (an opioid, the
    naloxone of buprenorphine combinations, the bupropion of Contrave)."""
    text = "; ".join(names)
    antagonists = {mention.drug.name for mention in mentions(text, Group.OPIOID_ANTAGONIST)}
    return (
        antagonists == {"naltrexone"}
        and not mentions(text, Group.OPIOID)
        and not _OTHER_ACTIVE.search(text)
    )


# --- What the portal answers: an OperationOutcome -------------------------------------------------

# Where each field of the dose rules' findings is, by the resource that holds it and the path in
# it. The steps ("steps.1.dose_mg") are read from FhirPaths.steps; a field not listed here points
# at the MedicationRequest (or the Patient, for "patient.*").
_FIELD_PATHS: dict[str, tuple[str, str]] = {
    "dosage_form": ("medication", ".form"),
    "concentration_mg_per_ml": ("medication", ".ingredient.strength"),
    "steps": ("request", ".dosageInstruction"),
    "doses_per_day": ("request", ".dosageInstruction.timing.repeat.frequency"),
    "time_of_day": ("request", ".dosageInstruction.timing.repeat.when"),
    "quantity": ("request", ".dispenseRequest.quantity"),
    "days_supply": ("request", ".dispenseRequest.expectedSupplyDuration"),
    "refills": ("request", ".dispenseRequest.numberOfRepeatsAllowed"),
    "diagnosis_codes": ("request", ".reasonCode"),
    "reason_for_compounding": ("request", ".note"),
    "ship_to": ("request", f".dispenseRequest.extension('{SHIP_TO_URL}')"),
    "acknowledged_warnings": ("request", f".extension('{ACKNOWLEDGED_WARNING_URL}')"),
    "prescriber": ("request", ".requester"),
    "prescription": ("request", ""),
    "refill": ("request", ""),
    "patient.orders": ("request", ""),  # another open order of the patient: duplicate therapy
    "patient.first_name": ("patient", ".name.given"),
    "patient.last_name": ("patient", ".name.family"),
    "patient.date_of_birth": ("patient", ".birthDate"),
    "patient.sex": ("patient", ".gender"),
    "patient.phone": ("patient", ".telecom"),
    "patient.address_line1": ("patient", ".address.line"),
    "patient.address_line2": ("patient", ".address.line"),
    "patient.city": ("patient", ".address.city"),
    "patient.state": ("patient", ".address.state"),
    "patient.postal_code": ("patient", ".address.postalCode"),
    "patient.takes_opioids": ("patient", f".extension('{TAKES_OPIOIDS_URL}')"),
    "patient.pregnant_or_breastfeeding": (
        "patient",
        f".extension('{PREGNANT_OR_BREASTFEEDING_URL}')",
    ),
    "patient.liver_disease": ("patient", f".extension('{LIVER_DISEASE_URL}')"),
    "patient.allergies": ("AllergyIntolerance", ""),
    "patient.medications": ("MedicationStatement", ""),
    "patient.current_medications": ("MedicationStatement", ""),
    "patient.conditions": ("Condition", ""),
}
_STEP_PATHS = {"dose_mg": ".doseAndRate[0].doseQuantity", "days": ".timing.repeat.boundsDuration"}
_ISSUE_SEVERITIES = {"error": "error", "warning": "warning", "info": "information"}


def finding_expression(field_name: str, paths: FhirPaths | None = None) -> str:
    """The FHIRPath of a finding's field: 'steps.1.dose_mg' ->
    'MedicationRequest.dosageInstruction[1].doseAndRate[0].doseQuantity'."""
    paths = paths or FhirPaths()
    parts = field_name.split(".")
    if parts[0] == "steps" and len(parts) in (2, 3) and parts[1].isdigit():
        index = int(parts[1])
        step = f"{paths.medication_request}.dosageInstruction[{index}]"
        if index < len(paths.steps):
            step = paths.steps[index]
        return step + (_STEP_PATHS.get(parts[2], "") if len(parts) == 3 else "")
    default = ("patient", "") if parts[0] == "patient" else ("request", "")
    holder, path = _FIELD_PATHS.get(field_name, default)
    bases = {
        "patient": paths.patient,
        "request": paths.medication_request,
        "medication": paths.medication,
    }
    base = bases.get(holder)
    if base is None:  # a resource the Bundle may hold several of
        base = f"{paths.bundle}.entry.resource.ofType({holder})" if paths.bundle else holder
    return base + path


def operation_outcome(
    *,
    findings: Iterable[Finding] = (),
    issues: Iterable[Issue] = (),
    paths: FhirPaths | None = None,
) -> dict:
    """An R4B OperationOutcome (as JSON) of input problems and the dose rules' findings; one
    informational issue when there are none. `paths` (FhirOrder.paths) points the findings into
    the Bundle they came from."""
    entries = [_input_issue(issue) for issue in issues]
    entries += [_finding_issue(finding, paths) for finding in findings]
    if not entries:
        entries = [
            {
                "severity": "information",
                "code": "informational",
                "details": {"text": "No problems found."},
            }
        ]
    outcome = OperationOutcome.model_validate(
        {"resourceType": "OperationOutcome", "issue": entries}
    )
    return outcome.model_dump(mode="json")


def _input_issue(issue: Issue) -> dict:
    entry = {"severity": issue.severity, "code": issue.code, "details": {"text": issue.message}}
    return {**entry, "expression": [issue.expression]} if issue.expression else entry


def _finding_issue(finding: Finding, paths: FhirPaths | None) -> dict:
    return {
        "severity": _ISSUE_SEVERITIES.get(str(finding.severity), "information"),
        "code": "business-rule",
        "details": {
            "coding": [{"system": FINDING_SYSTEM, "code": finding.code}],
            "text": finding.message,
        },
        "diagnostics": f"Source: {finding.source}",
        "expression": [finding_expression(finding.field, paths)],
    }


# --- What the portal shows: a MedicationRequest per order -----------------------------------------

# A MedicationRequest here is one order: the request to fill the prescription once (the first
# fill, a refill, the rest of a partial fill). Its status is that request's: active while the
# pharmacy works on it, completed once it has shipped. What stays of the prescription after it
# (refills, expiry) is in dispenseRequest (numberOfRepeatsAllowed, validityPeriod), and the fills
# of one prescription share groupIdentifier, the Rx number. The order's own status, finer than
# FHIR's, is in the order-status extension; statusReason says why one is on hold or stopped.
_REQUEST_STATUS = {
    OrderStatus.DRAFT: "draft",  # awaiting the prescriber's signature
    OrderStatus.SUBMITTED: "active",
    OrderStatus.IN_REVIEW: "active",
    OrderStatus.VERIFIED: "active",
    OrderStatus.COMPOUNDING: "active",
    OrderStatus.READY: "active",
    OrderStatus.ON_HOLD: "on-hold",  # a pharmacist's question to the prescriber
    OrderStatus.SHIPPED: "completed",
    OrderStatus.DELIVERED: "completed",
    OrderStatus.CANCELLED: "cancelled",  # nothing was dispensed
    OrderStatus.REJECTED: "cancelled",  # the pharmacist refused it: nothing was dispensed
}
_STATUS_REASONS = (OrderStatus.ON_HOLD, OrderStatus.CANCELLED, OrderStatus.REJECTED)
_FORM_TO_V3 = {DosageForm.CAPSULE: "CAP", DosageForm.ORAL_LIQUID: "ORALSOL"}
_FORM_TO_V3[DosageForm.TOPICAL_CREAM] = "TOPCRM"
NALTREXONE_INGREDIENT = "Naltrexone hydrochloride"


def medication_request_resource(order: Order) -> dict:
    """The order as an R4B MedicationRequest (JSON). The patient is only a reference."""
    prescription = order.prescription
    regimen = prescription_regimen(prescription, order.schedule)
    quantity = sum((line.units for line in order.lines()), Decimal(0))
    form = DosageForm(prescription.dosage_form)
    status = OrderStatus(order.status)
    identifiers = [{"system": ORDER_NUMBER_SYSTEM, "value": order.number}]
    if prescription.rx_number:
        identifiers.append({"system": RX_NUMBER_SYSTEM, "value": prescription.rx_number})
    resource = {
        "resourceType": "MedicationRequest",
        "id": order.number,
        "contained": [
            contained_medication(
                form,
                name=prescription.drug_description,
                concentration_mg_per_ml=prescription.concentration_mg_per_ml,
            )
        ],
        "extension": [
            {"url": ORDER_STATUS_URL, "valueCoding": _order_status_coding(status)},
            {"url": FILL_NUMBER_URL, "valueUnsignedInt": order.fill_number},
        ],
        "identifier": identifiers,
        "status": _REQUEST_STATUS[status],
        "intent": "order",
        "medicationReference": {"reference": f"#{MEDICATION_ID}"},
        "subject": {"reference": f"Patient/{prescription.patient_id}"},
        "authoredOn": prescription.written_on.isoformat(),
        "requester": {
            "reference": f"Practitioner/{prescription.prescriber_id}",
            "identifier": {"system": NPI_SYSTEM, "value": prescription.prescriber.npi},
        },
        "reasonCode": [_diagnosis(code) for code in prescription.diagnosis_codes],
        "note": [{"text": prescription.reason_for_compounding}],
        "dosageInstruction": [
            _dosage(position, step, regimen) for position, step in enumerate(regimen.steps, 1)
        ],
        "dispenseRequest": {
            "extension": [{"url": SHIP_TO_URL, "valueCode": order.ship_to}],
            "validityPeriod": {
                "start": prescription.written_on.isoformat(),
                "end": prescription.expires_on.isoformat(),
            },
            "numberOfRepeatsAllowed": prescription.refills_authorized,
            "quantity": units_quantity(quantity, form),
            "expectedSupplyDuration": days_duration(regimen.days_supply),
        },
    }
    if status in _STATUS_REASONS:
        resource["statusReason"] = {
            "coding": [_order_status_coding(status)],
            "text": status.label,
        }
    if prescription.rx_number:
        resource["groupIdentifier"] = {"system": RX_NUMBER_SYSTEM, "value": prescription.rx_number}
    return MedicationRequest.model_validate(resource).model_dump(mode="json")


def _order_status_coding(status: OrderStatus) -> dict:
    return {"system": ORDER_STATUS_SYSTEM, "code": status.value, "display": status.label}


def _diagnosis(code: str) -> dict:
    coding = {"system": ICD10CM_SYSTEM, "code": code}
    description = icd10.describe(code)
    return {"coding": [{**coding, "display": description} if description else coding]}


def _dosage(position: int, step: Step, regimen: Regimen) -> dict:
    repeat = {
        "boundsDuration": days_duration(step.days),
        "frequency": regimen.doses_per_day,
        "period": 1,
        "periodUnit": "d",
    }
    if regimen.doses_per_day == 1:  # a split dose has no one time of day
        repeat["when"] = [_TIME_TO_WHEN.get(regimen.time_of_day, "HS")]
    return {
        "sequence": position,
        "timing": {"repeat": repeat},
        "doseAndRate": [{"doseQuantity": mg_quantity(step.dose_mg)}],
    }


def _json_number(value: Decimal | int) -> Decimal | int:
    """30.00 -> 30, 1.500 -> 1.5: how FHIR JSON shows the amount."""
    number = Decimal(value).normalize()
    return int(number) if number == number.to_integral_value() else number


def mg_quantity(value: Decimal) -> dict:
    return {"value": _json_number(value), "unit": "mg", "system": UCUM_SYSTEM, "code": "mg"}


def days_duration(days: int) -> dict:
    return {"value": days, "unit": "days", "system": UCUM_SYSTEM, "code": "d"}


def units_quantity(value: Decimal, form: DosageForm) -> dict:
    """Capsules ({capsule}, a UCUM annotation) or mL, as the pharmacy counts the form."""
    if form == DosageForm.CAPSULE:
        unit, code = ("capsule" if value == 1 else "capsules"), "{capsule}"
    else:
        unit, code = "mL", "mL"
    return {"value": _json_number(value), "unit": unit, "system": UCUM_SYSTEM, "code": code}


def contained_medication(
    dosage_form: str,
    *,
    name: str,
    concentration_mg_per_ml: Decimal | None = None,
    strength_mg: Decimal | None = None,
    lot_number: str = "",
    beyond_use_date: datetime.date | None = None,
) -> dict:
    """The Medication a resource of the portal contains (id MEDICATION_ID): naltrexone in its
    form, with its strength per capsule or per mL when it has one, and the batch when one is
    known (its BUD is the batch's expirationDate)."""
    form = DosageForm(dosage_form)
    codings = [{"system": DOSAGE_FORM_SYSTEM, "code": form.value, "display": form.label}]
    if form in _FORM_TO_V3:
        codings.append({"system": DRUG_FORM_SYSTEM, "code": _FORM_TO_V3[form]})
    ingredient: dict = {"itemCodeableConcept": {"text": NALTREXONE_INGREDIENT}, "isActive": True}
    if strength_mg is not None:
        per = {"value": 1, "unit": "capsule", "system": UCUM_SYSTEM, "code": "{capsule}"}
        ingredient["strength"] = {"numerator": mg_quantity(strength_mg), "denominator": per}
    elif concentration_mg_per_ml is not None:
        per = {"value": 1, "unit": "mL", "system": UCUM_SYSTEM, "code": "mL"}
        numerator = mg_quantity(concentration_mg_per_ml)
        ingredient["strength"] = {"numerator": numerator, "denominator": per}
    medication = {
        "resourceType": "Medication",
        "id": MEDICATION_ID,
        "code": {"text": name},
        "form": {"coding": codings, "text": form.label},
        "ingredient": [ingredient],
    }
    if lot_number or beyond_use_date is not None:
        batch = {"lotNumber": lot_number} if lot_number else {}
        if beyond_use_date is not None:
            batch["expirationDate"] = beyond_use_date.isoformat()
        medication["batch"] = batch
    return medication
