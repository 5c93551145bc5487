"""A clinic's titration protocols: its prescribers name, change and remove them; anyone of the
clinic starts a new order from one. A protocol is checked by the dose rules that do not depend
on a patient when it is saved (an error refuses it on its field), and the whole set of rules
runs again on every order started from it: a protocol never lets an order skip a rule."""

import dataclasses
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import User
from core.text import required_text
from prescribers.selectors import prescriber_of_clinic

from . import dosing
from .checks import Catalogue, prescription_findings
from .dosing import DosageForm, Regimen
from .models import TitrationProtocol
from .order_input import format_schedule, parse_schedule

# The fields a protocol keeps: an error of the rules on any other field (the diagnosis, the
# patient) is for the order, not the protocol.
PROTOCOL_FIELDS = frozenset({
    "dosage_form", "concentration_mg_per_ml", "steps", "doses_per_day", "time_of_day",
    "days_supply", "refills", "quantity",
})  # fmt: skip
# A patient about whom nothing is known yet: the patient rules wait for the order.
_NO_PATIENT = dosing.PatientFacts(date_of_birth=None, takes_opioids=False)


def protocol_regimen(protocol: TitrationProtocol) -> Regimen:
    """The protocol as a regimen, with the quantity its schedule and days' supply need."""
    regimen = Regimen(
        dosage_form=DosageForm(protocol.dosage_form),
        steps=parse_schedule(protocol.steps),
        doses_per_day=protocol.doses_per_day,
        quantity=Decimal(0),
        days_supply=protocol.days_supply,
        refills=protocol.refills,
        concentration_mg_per_ml=(
            protocol.concentration_mg_per_ml if protocol.dosage_form != DosageForm.CAPSULE else None
        ),
        time_of_day=protocol.time_of_day,
    )
    return dataclasses.replace(regimen, quantity=dosing.quantity_needed(regimen) or Decimal(0))


def protocol_errors(protocol: TitrationProtocol, catalogue: Catalogue) -> dict[str, list[str]]:
    """The rules' errors on the protocol's own fields, by field (the quantity's on the
    schedule: a protocol's quantity follows from its schedule)."""
    findings = prescription_findings(
        regimen=protocol_regimen(protocol), patient=_NO_PATIENT, diagnosis_codes=(),
        catalogue=catalogue, today=timezone.localdate(),
    )  # fmt: skip
    errors: dict[str, list[str]] = {}
    for finding in findings:
        field = finding.field.split(".")[0]  # "steps.1.dose_mg": the schedule's second step
        if finding.severity == dosing.Severity.ERROR and field in PROTOCOL_FIELDS:
            field = "steps" if field == "quantity" else field
            errors.setdefault(field, []).append(finding.message)
    return errors


def _ensure_prescriber(actor: User, clinic_id: int) -> None:
    if prescriber_of_clinic(actor, clinic_id) is None:
        raise PermissionDenied("Only a prescriber of this clinic may change its protocols.")


def protocol_save(
    *, actor: User, clinic_id: int, protocol: TitrationProtocol | None = None, **fields
) -> TitrationProtocol:
    """Name a new protocol of the clinic, or change one (fields: name, dosage_form,
    concentration_mg_per_ml, steps as typed, doses_per_day, time_of_day, days_supply,
    refills). Raises ValidationError by field: a name the clinic already uses, or an error of
    the rules."""
    _ensure_prescriber(actor, clinic_id)
    if protocol is None:
        protocol = TitrationProtocol(clinic_id=clinic_id, created_by=actor)
    elif protocol.clinic_id != clinic_id:
        raise PermissionDenied("That protocol belongs to another clinic.")
    fields["name"] = required_text(fields["name"], "name")
    fields["steps"] = format_schedule(parse_schedule(fields["steps"]))
    for name, value in fields.items():
        setattr(protocol, name, value)
    if protocol.dosage_form == DosageForm.CAPSULE:
        protocol.concentration_mg_per_ml = None
    errors = protocol_errors(protocol, Catalogue.current())
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            protocol.save()
    except IntegrityError:
        raise ValidationError(
            {"name": [f"Your clinic already has a protocol named \u201c{protocol.name}\u201d."]}
        ) from None
    return protocol


def protocol_delete(*, actor: User, protocol: TitrationProtocol) -> None:
    """Remove a protocol: orders started from it keep their own prescription."""
    _ensure_prescriber(actor, protocol.clinic_id)
    protocol.delete()
