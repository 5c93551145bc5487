"""Ingredient lots and compounding batches: receiving and releasing lots, recording a batch,
its QC and its beyond-use date, and releasing it for dispensing.

Separation of duties: a batch is released by a pharmacist who did not compound it. A released
batch's record no longer changes (only recall moves it on)."""

import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import User
from core.numbers import quantity_text
from core.roles import PHARMACIST, STAFF, Role, has_staff_role, may_by_role
from core.state_machine import apply_transition
from core.text import required_text
from orders import bud
from orders.models import FormulationVersion, FormulationVersionStatus, Ingredient

from .models import (
    UNRELEASED_BATCH_STATUSES,
    Batch,
    BatchEvent,
    BatchIngredient,
    BatchStatus,
    IngredientLot,
    IngredientLotEvent,
    LotStatus,
    QcResult,
)

B, L = BatchStatus, LotStatus

# The one table of batch moves and who may make them (recalls: pharmacy/recalls.py).
BATCH_TRANSITIONS: dict[tuple[BatchStatus, BatchStatus], frozenset[Role]] = {
    (B.IN_PROGRESS, B.AWAITING_QC): STAFF,
    (B.AWAITING_QC, B.RELEASED): PHARMACIST,
    (B.AWAITING_QC, B.REJECTED): PHARMACIST,
    (B.AWAITING_QC, B.QUARANTINED): PHARMACIST,
    (B.QUARANTINED, B.RELEASED): PHARMACIST,
    (B.QUARANTINED, B.REJECTED): PHARMACIST,
    (B.RELEASED, B.RECALLED): PHARMACIST,
    (B.QUARANTINED, B.RECALLED): PHARMACIST,
}
LOT_TRANSITIONS: dict[tuple[LotStatus, LotStatus], frozenset[Role]] = {
    (L.QUARANTINE, L.RELEASED): PHARMACIST,
    (L.QUARANTINE, L.REJECTED): PHARMACIST,
    (L.RELEASED, L.RECALLED): PHARMACIST,
    (L.QUARANTINE, L.RECALLED): PHARMACIST,
}


def batch_transition(*, batch: Batch, to_status: BatchStatus, actor: User, note: str = "",
                     changes: dict | None = None) -> Batch:  # fmt: skip
    return apply_transition(
        instance=batch, to_status=to_status, actor=actor, transitions=BATCH_TRANSITIONS,
        may=may_by_role, event_model=BatchEvent, refused="A batch that is {what} cannot be {to}.",
        note=note, changes=changes,
    )  # fmt: skip


def lot_transition(*, lot: IngredientLot, to_status: LotStatus, actor: User,
                   note: str = "") -> IngredientLot:  # fmt: skip
    return apply_transition(
        instance=lot,
        to_status=to_status,
        actor=actor,
        transitions=LOT_TRANSITIONS,
        may=may_by_role,
        event_model=IngredientLotEvent,
        refused="An ingredient lot that is {what} cannot be {to}.",
        note=note,
    )


# --- Ingredient lots ---------------------------------------------------------------------------


def lot_receive(
    *,
    ingredient: Ingredient,
    manufacturer: str,
    lot_number: str,
    expires_on: datetime.date,
    quantity_received: Decimal,
    certificate_of_analysis: str,
    actor: User,
) -> IngredientLot:
    """A lot arrives: it waits in quarantine until a pharmacist releases it (503A: supplier,
    lot, expiry and certificate of analysis recorded)."""
    if not has_staff_role(actor, STAFF):
        raise PermissionDenied("Only pharmacy staff receive ingredient lots.")
    lot = IngredientLot(
        ingredient=ingredient, manufacturer=manufacturer.strip(), lot_number=lot_number.strip(),
        expires_on=expires_on, quantity_received=quantity_received,
        certificate_of_analysis=certificate_of_analysis.strip(), status=L.QUARANTINE,
        received_on=timezone.localdate(), received_by=actor,
    )  # fmt: skip
    lot.full_clean()
    if quantity_received <= 0:
        raise ValidationError({"quantity_received": "The quantity received must be above 0."})
    with transaction.atomic():
        lot._history_user = actor
        lot.save()
        IngredientLotEvent.record(lot, actor=actor, from_status="", to_status=L.QUARANTINE,
                                  note="Received.")  # fmt: skip
    return lot


def lot_release(*, lot: IngredientLot, actor: User) -> IngredientLot:
    if lot.expires_on <= timezone.localdate():
        raise ValidationError(f"{lot} expired on {lot.expires_on}: it cannot be released.")
    return lot_transition(lot=lot, to_status=L.RELEASED, actor=actor, note="Released for use.")


def lot_reject(*, lot: IngredientLot, actor: User, reason: str) -> IngredientLot:
    return lot_transition(
        lot=lot, to_status=L.REJECTED, actor=actor, note=required_text(reason, "reason")
    )


# --- Batches -----------------------------------------------------------------------------------


def _editable(batch: Batch) -> Batch:
    locked = Batch.objects.select_for_update().get(pk=batch.pk)
    if locked.status not in UNRELEASED_BATCH_STATUSES:
        raise ValidationError(
            f"Batch {locked.lot_number} is {locked.get_status_display().lower()}: its record "
            "can no longer change."
        )
    return locked


def batch_lot_number(formulation_version: FormulationVersion, day: datetime.date, serial: int):
    formulation = formulation_version.formulation
    """E.g. NX261122-C1.5-01: naltrexone, the day, the product (C capsule mg, O oral liquid,
    S sublingual, T topical, with the mg/mL), the serial of the day."""
    if formulation.strength_mg is not None:
        product = f"C{quantity_text(formulation.strength_mg)}"
    else:
        concentration = quantity_text(formulation.concentration_mg_per_ml)
        product = f"{formulation.dosage_form[:1].upper()}{concentration}"
    return f"NX{day:%y%m%d}-{product}-{serial:02d}"


def check_compounded_on(compounded_on: datetime.date) -> None:
    """A compounding date is never in the future (today is the pharmacy's local date): the
    BUD counts from it, so a date ahead of time would lengthen the BUD."""
    today = timezone.localdate()
    if compounded_on > today:
        raise ValidationError(
            {
                "compounded_on": ValidationError(
                    f"The compounding date {compounded_on.isoformat()} is in the future (today"
                    f" is {today.isoformat()}): record the day the batch was compounded.",
                    code="future",
                )
            }
        )


def batch_start(
    *,
    formulation_version: FormulationVersion,
    planned_units: Decimal,
    actor: User,
    compounded_on: datetime.date | None = None,
) -> Batch:
    """Open a compounding record by the approved master formulation record, compounded today
    or on an earlier day (never a later one)."""
    if not has_staff_role(actor, STAFF):
        raise PermissionDenied("Only pharmacy staff compound.")
    if compounded_on is not None:
        check_compounded_on(compounded_on)
    formulation_version.refresh_from_db(fields=["status"])
    if formulation_version.status != FormulationVersionStatus.APPROVED:
        raise ValidationError(
            f"{formulation_version} is not approved: compound by the approved version only."
        )
    if planned_units <= 0:
        raise ValidationError({"planned_units": "Plan at least one unit."})
    day = compounded_on or timezone.localdate()
    for _attempt in range(20):  # two batches started at once may both pick the next serial
        serial = Batch.objects.filter(compounded_on=day).count() + 1 + _attempt
        try:
            with transaction.atomic():
                batch = Batch(
                    lot_number=batch_lot_number(formulation_version, day, serial),
                    formulation_version=formulation_version, compounded_on=day,
                    compounded_by=actor, planned_units=planned_units,
                    status=B.IN_PROGRESS, status_changed_at=timezone.now(),
                )  # fmt: skip
                batch._history_user = actor
                batch.save()
                BatchEvent.record(batch, actor=actor, from_status="", to_status=B.IN_PROGRESS,
                                  note="Compounding started.")  # fmt: skip
                return batch
        except IntegrityError:
            continue
    raise ValidationError("Could not number the batch; try again.")


def batch_add_ingredient(*, batch: Batch, lot: IngredientLot, amount: Decimal, actor: User):
    """Record an ingredient lot used, with its amount."""
    if not has_staff_role(actor, STAFF):
        raise PermissionDenied("Only pharmacy staff record compounding.")
    with transaction.atomic():
        locked = _editable(batch)
        if locked.status != B.IN_PROGRESS:
            raise ValidationError("Ingredients are recorded while the batch is in progress.")
        if lot.status != L.RELEASED:
            raise ValidationError(
                f"{lot} is {lot.get_status_display().lower()}: only released lots are used."
            )
        if lot.expires_on <= locked.compounded_on:
            raise ValidationError(f"{lot} expired on {lot.expires_on}: it cannot be used.")
        expected = locked.formulation_version.ingredients.values_list("ingredient_id", flat=True)
        if lot.ingredient_id not in set(expected):
            version = locked.formulation_version
            raise ValidationError(
                f"{lot.ingredient} is not in the master formulation record {version}."
            )
        if amount <= 0:
            raise ValidationError({"amount": "The amount must be above 0."})
        return BatchIngredient.objects.create(batch=locked, lot=lot, amount=amount)


def batch_submit_for_qc(*, batch: Batch, actor: User, actual_units: Decimal,
                        deviations: str = "") -> Batch:  # fmt: skip
    """The compounder records the yield (and any deviation) and hands the batch to QC."""
    if actual_units is None or actual_units <= 0:
        raise ValidationError({"actual_units": "Record the actual yield (above 0 units)."})
    with transaction.atomic():
        locked = _editable(batch)
        if not locked.ingredients.exists():
            raise ValidationError("Record the ingredient lots used before QC.")
        return batch_transition(
            batch=locked, to_status=B.AWAITING_QC, actor=actor, note="Ready for QC.",
            changes={"actual_units": actual_units, "deviations": deviations.strip()},
        )  # fmt: skip


def batch_record_qc(*, batch: Batch, check_name: str, passed: bool, actor: User,
                    notes: str = "") -> QcResult:  # fmt: skip
    """A QC check of the master formulation record, passed or failed."""
    if not has_staff_role(actor, STAFF):
        raise PermissionDenied("Only pharmacy staff record QC.")
    with transaction.atomic():
        locked = _editable(batch)
        if locked.status != B.AWAITING_QC:
            raise ValidationError("QC is recorded once the batch awaits QC.")
        if check_name not in locked.formulation_version.qc_checks:
            raise ValidationError(f'"{check_name}" is not a QC check of this formulation.')
        result, _ = QcResult.objects.update_or_create(
            batch=locked, check_name=check_name,
            defaults={"passed": passed, "notes": notes.strip(), "recorded_by": actor},
        )  # fmt: skip
        return result


def batch_recalled_lots(batch: Batch) -> list[IngredientLot]:
    """The recalled ingredient lots a batch was made from: a batch with any must not be
    released (the batch release service refuses it)."""
    return list(
        IngredientLot.objects.filter(uses__batch=batch, status=LotStatus.RECALLED)
        .select_related("ingredient")
        .distinct()
        .order_by("pk")
    )


def batch_beyond_use_date(batch: Batch, *, shortened_to: datetime.date | None = None):
    """The BUD of this batch and how it was reached (USP <795> table, capped by lot expiry)."""
    lots = [
        bud.LotExpiry(
            ingredient=str(use.lot.ingredient),
            lot_number=use.lot.lot_number,
            expires_on=use.lot.expires_on,
        )
        for use in batch.ingredients.select_related("lot__ingredient")
    ]
    try:
        return bud.beyond_use_date(
            category=batch.formulation_version.bud,
            compounded_on=batch.compounded_on,
            lots=lots,
            shortened_to=shortened_to,
            compounding_date_is_day_one=settings.BUD_COMPOUNDING_DATE_IS_DAY_ONE,
        )
    except bud.BudRefused as refused:
        raise ValidationError(str(refused), code="bud") from refused


def batch_release(*, batch: Batch, actor: User,
                  bud_shortened_to: datetime.date | None = None) -> Batch:  # fmt: skip
    """A pharmacist who did not compound the batch releases it after every QC check passed;
    its BUD is fixed now, with the reasoning."""
    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        if locked.compounded_by_id == actor.pk:
            raise ValidationError(
                "The pharmacist who releases a batch cannot be the person who compounded it."
            )
        today = timezone.localdate()
        if locked.compounded_on > today:
            raise ValidationError(
                f"Batch {locked.lot_number} was compounded on {locked.compounded_on.isoformat()},"
                f" after today's release date {today.isoformat()}: a batch is released on or"
                " after the day it was compounded.",
                code="compounded_after_release",
            )
        checks = locked.formulation_version.qc_checks
        results = {r.check_name: r.passed for r in locked.qc_results.all()}
        missing = [check for check in checks if check not in results]
        failed = [check for check in checks if results.get(check) is False]
        if missing or failed:
            raise ValidationError(
                "QC is not complete: "
                + "; ".join(
                    [*(f"missing: {c}" for c in missing), *(f"failed: {c}" for c in failed)]
                )
            )
        recalled = batch_recalled_lots(locked)
        if recalled:
            raise ValidationError(
                f"Made from recalled {', '.join(map(str, recalled))}: it cannot be released."
            )
        shortened_to = bud_shortened_to or locked.bud_shortened_to
        result = batch_beyond_use_date(locked, shortened_to=shortened_to)  # from compounded_on
        if result.date <= today:
            raise ValidationError(f"Its beyond-use date {result.date} has passed.")
        return batch_transition(
            batch=locked, to_status=B.RELEASED, actor=actor,
            note=f"Released. BUD {result.date}: {result.explanation}.",
            changes={
                "beyond_use_date": result.date, "bud_explanation": result.explanation,
                "bud_shortened_to": shortened_to, "units_remaining": locked.actual_units,
                "released_by": actor, "released_at": timezone.now(),
            },
        )  # fmt: skip


def batch_reject(*, batch: Batch, actor: User, reason: str) -> Batch:
    return batch_transition(
        batch=batch, to_status=B.REJECTED, actor=actor, note=required_text(reason, "reason")
    )


def batch_quarantine(*, batch: Batch, actor: User, reason: str) -> Batch:
    return batch_transition(
        batch=batch, to_status=B.QUARANTINED, actor=actor, note=required_text(reason, "reason")
    )
