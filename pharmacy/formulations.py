"""Master formulation records: drafts, and approval by a second pharmacist.

A change to a formulation is a new version; an approved version is never edited, and batches
keep pointing at the version they were made by."""

from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .models import (
    Formulation,
    FormulationIngredient,
    FormulationVersion,
    FormulationVersionStatus,
    Ingredient,
    User,
)
from .roles import is_pharmacist

VERSION_FIELDS = frozenset(
    {"bud_category", "storage", "container", "compounding_instructions", "qc_checks",
     "auxiliary_labels"}
)  # fmt: skip


def formulation_current_version(formulation: Formulation) -> FormulationVersion | None:
    return formulation.versions.filter(status=FormulationVersionStatus.APPROVED).first()


def formulation_version_draft(
    *,
    formulation: Formulation,
    actor: User,
    ingredients: list[tuple[Ingredient, Decimal]],
    **fields,
) -> FormulationVersion:
    """A new draft version, numbered after the last one."""
    unknown = set(fields) - VERSION_FIELDS
    if unknown:
        raise TypeError(f"Not formulation version fields: {', '.join(sorted(unknown))}")
    if not is_pharmacist(actor):
        raise PermissionDenied("Only a pharmacist writes master formulation records.")
    if not ingredients:
        raise ValidationError("A master formulation record lists at least one ingredient.")
    with transaction.atomic():
        Formulation.objects.select_for_update().get(pk=formulation.pk)  # numbers one at a time
        last = formulation.versions.aggregate(last=Max("version"))["last"] or 0
        version = FormulationVersion(formulation=formulation, version=last + 1, author=actor,
                                     **fields)  # fmt: skip
        version._history_user = actor
        version.full_clean()
        version.save()
        FormulationIngredient.objects.bulk_create(
            FormulationIngredient(version=version, ingredient=ingredient, amount_per_unit=amount)
            for ingredient, amount in ingredients
        )
    return version


def formulation_version_approve(*, version: FormulationVersion, actor: User) -> FormulationVersion:
    """A pharmacist other than the author approves a draft; the version it replaces is
    superseded in the same transaction."""
    if not is_pharmacist(actor):
        raise PermissionDenied("Only a pharmacist approves master formulation records.")
    with transaction.atomic():
        Formulation.objects.select_for_update().get(pk=version.formulation_id)
        locked = FormulationVersion.objects.select_for_update().get(pk=version.pk)
        if locked.status != FormulationVersionStatus.DRAFT:
            raise ValidationError(
                f"Version {locked.version} is {locked.get_status_display().lower()}, not a draft."
            )
        if locked.author_id == actor.pk:
            raise ValidationError(
                "A master formulation record is approved by a pharmacist other than its author."
            )
        previous = FormulationVersion.objects.filter(
            formulation_id=locked.formulation_id, status=FormulationVersionStatus.APPROVED
        )
        for old in previous:
            old.status = FormulationVersionStatus.SUPERSEDED
            old._history_user = actor
            old.save(update_fields=["status"])
        locked.status = FormulationVersionStatus.APPROVED
        locked.approved_by = actor
        locked.approved_at = timezone.now()
        locked._history_user = actor
        locked.save(update_fields=["status", "approved_by", "approved_at"])
    return locked
