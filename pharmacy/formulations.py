"""Master formulation records: drafts, and approval by a second pharmacist.

A change to a formulation is a new version; an approved version is never edited, and batches
keep pointing at the version they were made by. A record whose BUD category does not fit its
dosage form, whose storage contradicts its category, or whose capsule holds a forbidden
excipient is refused when drafted and again when approved (a draft may be edited in between)."""

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.models import User
from core.roles import is_pharmacist
from orders import bud
from orders.bud import RecordProblem
from orders.dosing import DosageForm
from orders.models import (
    Formulation,
    FormulationIngredient,
    FormulationVersion,
    FormulationVersionStatus,
    Ingredient,
)

# What a master formulation record says, in the order its form asks for it.
VERSION_FIELDS = (
    "bud_category",
    "water_activity",
    "antimicrobial_preservative",
    "storage",
    "container",
    "compounding_instructions",
    "qc_checks",
    "auxiliary_labels",
)

SOURCE_LDN_TRUST = "LDN Research Trust guidance"
# Auxiliary labels print on every bottle's label beside the required content: a few short ones
# (the pharmacy's choice; a 4 x 2 in label has room for three such lines at the usual size).
AUXILIARY_LABELS_MAX = 3
AUXILIARY_LABEL_LENGTH = 60


@dataclass(frozen=True)
class ForbiddenExcipient:
    """Ingredient names that may not go into an LDN capsule, and why."""

    code: str
    names: re.Pattern
    why: str
    source: str = SOURCE_LDN_TRUST


# Capsule fillers are microcrystalline cellulose or similar. LDN is given as a plain,
# immediate-release capsule: never calcium carbonate, never anything that slows release
# (LDN Research Trust).
FORBIDDEN_CAPSULE_EXCIPIENTS = (
    ForbiddenExcipient(
        "ingredients.calcium_carbonate",
        re.compile(r"calcium\s+carbonate|\bCaCO3\b", re.I),
        "it hurts the absorption of naltrexone",
    ),
    ForbiddenExcipient(
        "ingredients.slow_release",
        re.compile(
            r"\b(?:slow|sustained|extended|controlled|prolonged|modified|delayed|timed?)"
            r"[\s-]*release\b|\benteric\b|\bDR\s?caps\b",
            re.I,
        ),
        "LDN is never slow-release, nor otherwise modified release",
    ),
    # Release-modifying grades say so in capitals ("Kollidon SR", "Methocel K100M Premium CR").
    ForbiddenExcipient(
        "ingredients.slow_release",
        re.compile(r"\b(?:SR|ER|XR|XL|CR|DR|MR)\b"),
        "LDN is never slow-release, nor otherwise modified release",
    ),
    # Methylcellulose and its derivatives (Methocel, hypromellose / HPMC) swell into a gel
    # matrix in the capsule fill and slow the release; so do the other matrix polymers named
    # here. Carboxymethylcellulose is not one of them (its cross-linked form, croscarmellose,
    # speeds disintegration), and a hypromellose capsule *shell* is allowed (see _SHELL below).
    ForbiddenExcipient(
        "ingredients.release_matrix",
        re.compile(
            r"methocel|(?<!carboxy)methyl\s*cellulose|hypromellose|\bHPMC\b|hydroxypropyl\s*methyl"
            r"|\bethyl\s*cellulose|ethocel|eudragit|polyethylene\s+oxide|polyox",
            re.I,
        ),
        "in the fill it swells into a gel that slows the release, and LDN is never slow-release",
    ),
)
# A hypromellose (HPMC, "vegetarian") capsule shell is a thin film that dissolves like a
# gelatin one and releases the fill at once; a slowed release comes from the polymer mixed into
# the fill as a matrix, most of all its high-viscosity grades (K4M, K15M, K100M, E4M...). So a
# name that says capsule or shell is allowed unless it names such a grade.
_SHELL = re.compile(r"\bcapsules?\b|\bshells?\b", re.I)
_MATRIX_GRADE = re.compile(r"\b[EFK]\s?\d+(?:\.\d+)?\s?(?:M|LV)\b", re.I)


def capsule_excipient_problems(ingredient_names: Iterable[str]) -> list[RecordProblem]:
    """The ingredients of a capsule's master formulation record that LDN forbids (calcium
    carbonate, slow-release excipients), one problem per ingredient; empty when none."""
    problems = []
    for name in ingredient_names:
        for excipient in FORBIDDEN_CAPSULE_EXCIPIENTS:
            if not excipient.names.search(name):
                continue
            shell = _SHELL.search(name) and not _MATRIX_GRADE.search(name)
            if excipient.code == "ingredients.release_matrix" and shell:
                continue
            problems.append(
                RecordProblem(
                    excipient.code,
                    "ingredients",
                    f"{name[:1].upper()}{name[1:]} cannot go into an LDN capsule: {excipient.why}.",
                    excipient.source,
                )
            )
            break
    return problems


def formulation_record_problems(
    *,
    dosage_form: str,
    bud_category: str,
    water_activity: Decimal | None,
    antimicrobial_preservative: bool,
    storage: str,
    ingredient_names: Iterable[str] = (),
) -> list[RecordProblem]:
    """Everything that keeps a master formulation record from being written or approved: its
    BUD category against the dosage form and water activity, its storage against the category
    (USP <795>), and for a capsule its excipients (LDN Research Trust)."""
    problems = [
        *bud.category_problems(
            dosage_form=dosage_form,
            category=bud_category,
            water_activity=water_activity,
            preserved=antimicrobial_preservative,
        ),
        *bud.storage_problems(bud_category, storage),
    ]
    if dosage_form == DosageForm.CAPSULE:
        problems.extend(capsule_excipient_problems(ingredient_names))
    return problems


def refuse_problems(problems: Iterable[RecordProblem]) -> None:
    """Raise one ValidationError naming each field with its problems, if there are any."""
    by_field = defaultdict(list)
    for problem in problems:
        by_field[problem.field].append(ValidationError(problem.message, code=problem.code))
    if by_field:
        raise ValidationError(dict(by_field))


def _version_problems(version: FormulationVersion, ingredient_names: Iterable[str]):
    return formulation_record_problems(
        dosage_form=version.formulation.dosage_form,
        bud_category=version.bud_category,
        water_activity=version.water_activity,
        antimicrobial_preservative=version.antimicrobial_preservative,
        storage=version.storage,
        ingredient_names=ingredient_names,
    )


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
    unknown = set(fields) - set(VERSION_FIELDS)
    if unknown:
        raise TypeError(f"Not formulation version fields: {', '.join(sorted(unknown))}")
    if not is_pharmacist(actor):
        raise PermissionDenied("Only a pharmacist writes master formulation records.")
    if not ingredients:
        raise ValidationError("A master formulation record lists at least one ingredient.")
    with transaction.atomic():
        Formulation.objects.select_for_update().get(pk=formulation.pk)  # numbers one at a time
        last = formulation.versions.aggregate(last=Max("version"))["last"] or 0
        version = FormulationVersion(
            formulation=formulation, version=last + 1, author=actor, **fields
        )
        version._history_user = actor
        version.full_clean()
        refuse_problems(_version_problems(version, [i.name for i, _amount in ingredients]))
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
        # The draft may have been edited since it was written: check it again as it stands.
        names = [use.ingredient.name for use in locked.ingredients.select_related("ingredient")]
        if not names:
            raise ValidationError(
                {"ingredients": "A master formulation record lists at least one ingredient."}
            )
        refuse_problems(_version_problems(locked, names))
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
