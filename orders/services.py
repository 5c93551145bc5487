"""Writes about patients. Callers validate input; these check who may write, then write."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from pharmacy.models import User
from prescribers.models import Clinic

from .models import Patient

PATIENT_FIELDS = frozenset(Patient.EDITABLE_FIELDS)


def ensure_may_edit_patients(*, actor: User, clinic_id: int) -> None:
    """An approved prescriber edits the patients of their own clinic; staff need the permission."""
    prescriber = actor.portal_prescriber
    if prescriber is not None:
        if prescriber.is_approved and prescriber.clinic_id == clinic_id:
            return
    elif actor.is_active and actor.has_perm("orders.change_patient"):
        return
    raise PermissionDenied("You may not edit this clinic's patients.")


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - PATIENT_FIELDS
    if unknown:
        raise TypeError(f"Not patient fields: {', '.join(sorted(unknown))}")


def patient_create(*, clinic: Clinic, actor: User, **fields: Any) -> Patient:
    _check_fields(fields)
    ensure_may_edit_patients(actor=actor, clinic_id=clinic.pk)
    patient = Patient(clinic=clinic, created_by=actor, **fields)
    patient.full_clean()
    patient._history_user = actor
    with transaction.atomic():
        patient.save()
    return patient


def patient_update(*, patient: Patient, actor: User, **fields: Any) -> Patient:
    """Save the fields that differ from the stored record (a form may have changed `patient`
    in memory already, so the comparison is against the locked row)."""
    _check_fields(fields)
    ensure_may_edit_patients(actor=actor, clinic_id=patient.clinic_id)
    with transaction.atomic():
        stored = Patient.objects.select_for_update().get(pk=patient.pk)
        changed = [name for name, value in fields.items() if getattr(stored, name) != value]
        if not changed:
            return stored
        for name in changed:
            setattr(stored, name, fields[name])
        stored.full_clean()
        stored._history_user = actor
        stored.save(update_fields=[*changed, "updated_at"])
    return stored
