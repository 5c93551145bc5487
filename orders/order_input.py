"""Turning what a prescriber typed (the order form, or the live check's JSON) into a Regimen.

Only types and shapes are checked here; the dose rules themselves live in dosing.py and run
in one place (checks.prescription_findings)."""

import datetime
import re
from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from core.numbers import quantity_text

from .dosing import DosageForm, PatientFacts, Regimen, Step
from .models import TimeOfDay

MAX_STEPS = 12
SCHEDULE_HELP = "Dose in mg x days for each step, e.g. 1.5 x 14, 3 x 14, 4.5 x 30"
_STEP = re.compile(
    r"^(?P<dose>\d{1,4}(?:\.\d{1,3})?)\s*(?:mg)?\s*(?:x|\u00d7|\*|for)\s*(?P<days>\d{1,4})\s*"
    r"(?:days?|d)?$",
    re.IGNORECASE,
)
# Django's own fields give the messages for numbers ("Enter a number.", too many digits, ...).
DOSE_FIELD = forms.DecimalField(max_digits=7, decimal_places=3)
QUANTITY_FIELD = forms.DecimalField(max_digits=8, decimal_places=2)
COUNT_FIELD = forms.IntegerField(min_value=-1000, max_value=10000)


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_schedule(text: str) -> tuple[Step, ...]:
    """'1.5 x 14, 3 x 14, 4.5 x 30' -> steps. Raises ValidationError naming the bad part."""
    parts = [part.strip() for part in re.split(r"[,;\n]+", text or "") if part.strip()]
    if not parts:
        raise ValidationError(f"Enter at least one step. {SCHEDULE_HELP}.", code="empty")
    if len(parts) > MAX_STEPS:
        raise ValidationError(f"At most {MAX_STEPS} steps.", code="too_many_steps")
    steps = []
    for part in parts:
        match = _STEP.match(part)
        if match is None:
            raise ValidationError(f'"{part}" is not a step. {SCHEDULE_HELP}.', code="bad_step")
        steps.append(Step(dose_mg=Decimal(match["dose"]), days=int(match["days"])))
    return tuple(steps)


def format_schedule(steps) -> str:
    return ", ".join(f"{quantity_text(step.dose_mg)} x {step.days}" for step in steps)


class InputErrors(Exception):
    """Every problem with a request, as [{"field": ..., "message": ...}]."""

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__(errors)
        self.errors = errors


class _Reader:
    """Reads typed values out of a JSON object, collecting every error instead of stopping."""

    def __init__(self, data: dict):
        self.data = data
        self.errors: list[dict[str, str]] = []

    def error(self, field: str, message: str):
        self.errors.append({"field": field, "message": message})

    def value(self, field: str, data: dict | None = None, *, required: bool = True):
        data = self.data if data is None else data
        if field not in data or data[field] is None:
            if required:
                self.error(field, "This field is required.")
            return None
        return data[field]

    def number(self, field: str, django_field: forms.Field, data=None, *, name=None,
               required: bool = True):  # fmt: skip
        raw = self.value(field, data, required=required)
        if raw is None:
            return None
        if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
            self.error(name or field, "Enter a number (as a JSON number or a string).")
            return None
        try:
            return django_field.clean(str(raw))
        except ValidationError as exc:
            self.error(name or field, " ".join(exc.messages))
            return None

    def boolean(self, field: str, data: dict, *, name: str, default=None):
        raw = data.get(field, default)
        if not isinstance(raw, bool):
            self.error(name, "Enter true or false.")
            return None
        return raw

    def text(self, field: str, data: dict, *, name: str, default: str = "") -> str:
        raw = data.get(field, default)
        if not isinstance(raw, str):
            self.error(name, "Enter text.")
            return default
        return raw


def parse_dose_check(data) -> tuple[Regimen, dict | None, int | None, list[str]]:
    """The live check's JSON -> (regimen, inline patient facts or None, patient id or None,
    diagnosis codes). Raises InputErrors listing every missing or wrongly typed field."""
    if not isinstance(data, dict):
        raise InputErrors([{"field": "", "message": "Send a JSON object."}])
    read = _Reader(data)
    dosage_form = read.value("dosage_form")
    if dosage_form is not None and dosage_form not in DosageForm.__members__.values():
        read.error("dosage_form", f"Choose one of: {', '.join(DosageForm)}.")
        dosage_form = None
    concentration = read.number(
        "concentration_mg_per_ml", DOSE_FIELD,
        required=dosage_form not in (None, DosageForm.CAPSULE),
    )  # fmt: skip
    steps = _read_steps(read)
    doses_per_day = read.number("doses_per_day", COUNT_FIELD)
    quantity = read.number("quantity", QUANTITY_FIELD, required=False)
    days_supply = read.number("days_supply", COUNT_FIELD)
    refills = read.number("refills", COUNT_FIELD)
    time_of_day = read.value("time_of_day", required=False) or TimeOfDay.BEDTIME
    if not isinstance(time_of_day, str) or time_of_day not in TimeOfDay.values:
        read.error("time_of_day", f"Choose one of: {', '.join(TimeOfDay.values)}.")
    codes = read.value("diagnosis_codes", required=False) or []
    if not isinstance(codes, list) or not all(isinstance(code, str) for code in codes):
        read.error("diagnosis_codes", "Send a list of ICD-10-CM codes as strings.")
        codes = []
    patient_id, facts = _read_patient(read)
    if read.errors:
        raise InputErrors(read.errors)
    regimen = Regimen(
        dosage_form=DosageForm(dosage_form),
        steps=steps,
        doses_per_day=doses_per_day,
        quantity=quantity,
        days_supply=days_supply,
        refills=refills,
        concentration_mg_per_ml=concentration if dosage_form != DosageForm.CAPSULE else None,
        time_of_day=time_of_day,
    )
    return regimen, facts, patient_id, codes


def _read_steps(read: _Reader) -> tuple[Step, ...]:
    raw = read.value("steps")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        read.error("steps", 'Send a non-empty list of steps: {"dose_mg": ..., "days": ...}.')
        return ()
    if len(raw) > MAX_STEPS:
        read.error("steps", f"At most {MAX_STEPS} steps.")
        return ()
    steps = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            read.error(f"steps.{i}", 'Each step is an object: {"dose_mg": ..., "days": ...}.')
            continue
        dose = read.number("dose_mg", DOSE_FIELD, item, name=f"steps.{i}.dose_mg")
        days = read.number("days", COUNT_FIELD, item, name=f"steps.{i}.days")
        if dose is not None and days is not None:
            steps.append(Step(dose_mg=dose, days=days))
    return tuple(steps)


def _read_patient(read: _Reader) -> tuple[int | None, PatientFacts | None]:
    patient_id, patient = read.data.get("patient_id"), read.data.get("patient")
    if (patient_id is None) == (patient is None):
        read.error("patient", 'Send either "patient_id" or "patient", not both.')
        return None, None
    if patient_id is not None:
        if isinstance(patient_id, bool) or not isinstance(patient_id, int):
            read.error("patient_id", "Send the patient's id as a number.")
            return None, None
        return patient_id, None
    if not isinstance(patient, dict):
        read.error("patient", "Send the patient's facts as an object.")
        return None, None
    # The date of birth decides the age rules: a number, null or a missing key is refused,
    # never read as "unknown" (which would skip them).
    born, text = None, patient.get("date_of_birth")
    if not isinstance(text, str) or not ISO_DATE.fullmatch(text):
        read.error("patient.date_of_birth", "Send the date of birth as text, YYYY-MM-DD.")
    else:
        try:
            born = datetime.date.fromisoformat(text)
        except ValueError:
            read.error("patient.date_of_birth", "Enter a date that exists, as YYYY-MM-DD.")
    facts = PatientFacts(
        date_of_birth=born,
        takes_opioids=read.boolean("takes_opioids", patient, name="patient.takes_opioids"),
        medications=read.text("medications", patient, name="patient.medications"),
        pregnant_or_breastfeeding=read.boolean(
            "pregnant_or_breastfeeding",
            patient,
            name="patient.pregnant_or_breastfeeding",
            default=False,
        ),
        liver_disease=read.boolean(
            "liver_disease", patient, name="patient.liver_disease", default=False
        ),
    )
    return None, facts
