"""Recalls: of a batch lot, or of an ingredient lot and every batch made from it, traced to every
dispense, order, patient, prescriber and clinic affected, with a notice owed to each clinic.

The notices are written here as pending rows in the same transaction as the recall; sending them
is the notifications work's job. The impact and its CSV export carry personal health
information on purpose (they are for the pharmacist): never log them."""

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from prescribers.models import Clinic

from .batches import BATCH_TRANSITIONS, batch_transition, lot_transition
from .models import (
    Batch,
    BatchIngredient,
    BatchStatus,
    DeliveryKind,
    Dispense,
    IngredientLot,
    LotStatus,
    Recall,
    RecallNotice,
    User,
)
from .notifications import delivery_enqueue
from .roles import is_pharmacist

B, L = BatchStatus, LotStatus

# Batches that can still be recalled (moved to recalled) when their ingredient lot is: the
# recall moves are rows of the batch table in pharmacy/batches.py.
RECALLABLE_BATCH_STATUSES = frozenset(
    frm for (frm, to) in BATCH_TRANSITIONS if to == BatchStatus.RECALLED
)
# Batches not released yet: a recall of one of their lots leaves their status, and they must
# never be released (see batches.batch_recalled_lots).
UNRELEASED_BATCH_STATUSES = frozenset({B.IN_PROGRESS, B.AWAITING_QC})

# What a dispense reaches, loaded with it in one query.
DISPENSE_REACHES = ("batch", "order__clinic", "order__prescription__patient",
                    "order__prescription__prescriber")  # fmt: skip
CSV_HEADER = [
    "batch lot", "order number", "dispensed at", "units", "patient name",
    "patient date of birth", "prescriber", "prescriber NPI", "clinic", "clinic phone",
    "clinic label email",
]  # fmt: skip


def _check_may_recall(actor: User) -> None:
    if not is_pharmacist(actor):
        raise PermissionDenied("Only a pharmacist may start a recall.")


def _reason(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationError("Write the reason for the recall.", code="required")
    return text


def _recall_batch_row(*, batch: Batch, actor: User, note: str) -> Batch:
    return batch_transition(batch=batch, to_status=B.RECALLED, actor=actor, note=note)


def _write_notices(recall: Recall, batch_ids: Iterable[int]) -> None:
    """One pending notice per clinic that received units of these batches."""
    clinic_ids = (
        Dispense.objects.filter(batch_id__in=list(batch_ids))
        .order_by("order__clinic_id")
        .values_list("order__clinic_id", flat=True)
        .distinct()
    )
    for notice in RecallNotice.objects.bulk_create(
        RecallNotice(recall=recall, clinic_id=clinic_id) for clinic_id in clinic_ids
    ):
        # The email of each notice goes through the outbox, after this transaction commits.
        delivery_enqueue(kind=DeliveryKind.RECALL_NOTICE, recall_notice=notice,
                         recipient=Clinic.objects.get(pk=notice.clinic_id).label_email)  # fmt: skip


def batch_recall(*, batch: Batch, actor: User, reason: str) -> Recall:
    """Recall a released or quarantined batch: it becomes recalled (its event note is the
    reason), and every clinic whose orders received units of it is owed a notice."""
    _check_may_recall(actor)
    reason = _reason(reason)
    with transaction.atomic():
        batch = _recall_batch_row(batch=batch, actor=actor, note=reason)
        recall = Recall.objects.create(batch=batch, reason=reason, initiated_by=actor)
        _write_notices(recall, [batch.pk])
    return recall


def ingredient_lot_recall(*, lot: IngredientLot, actor: User, reason: str) -> Recall:
    """Recall an ingredient lot and every released or quarantined batch made from it.

    Batches made from it that are not released yet (in progress, awaiting QC) keep their status
    and are listed in the impact: they can no longer be released. Rows are locked lot first,
    then its batches by primary key."""
    _check_may_recall(actor)
    reason = _reason(reason)
    with transaction.atomic():
        lot = lot_transition(lot=lot, to_status=L.RECALLED, actor=actor, note=reason)
        batches = list(
            Batch.objects.select_for_update()
            .filter(pk__in=BatchIngredient.objects.filter(lot=lot).values("batch_id"))
            .order_by("pk")
        )
        note = f"Made from recalled ingredient lot {lot} ({lot.manufacturer}): {reason}"
        for batch in batches:
            if batch.status in RECALLABLE_BATCH_STATUSES:
                _recall_batch_row(batch=batch, actor=actor, note=note)
        recall = Recall.objects.create(ingredient_lot=lot, reason=reason, initiated_by=actor)
        _write_notices(recall, [batch.pk for batch in batches])
    return recall


# --- The impact of a recall ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecallImpact:
    """Everything a recall reaches. Each list is distinct and sorted: batches by lot number,
    dispenses by batch and time, orders by number, patients and prescribers by name, clinics
    by name. unreleased_batches are batches made from a recalled ingredient lot that were never
    released: their status stays, and they cannot be released any more."""

    recall: Recall
    batches: list[Batch]
    unreleased_batches: list[Batch]
    dispenses: list[Dispense]
    orders: list
    patients: list
    prescribers: list
    clinics: list
    notices: list[RecallNotice]
    units_dispensed: Decimal
    counts: dict[str, int]


Item = TypeVar("Item")


def _distinct(items: Iterable[Item], sort_key: Callable[[Item], tuple]) -> list[Item]:
    by_pk = {item.pk: item for item in items}
    return sorted(by_pk.values(), key=sort_key)


def _batches_of(recall: Recall):
    if recall.batch_id is not None:
        return Batch.objects.filter(pk=recall.batch_id)
    used = BatchIngredient.objects.filter(lot_id=recall.ingredient_lot_id).values("batch_id")
    return Batch.objects.filter(pk__in=used)


def recall_impact(recall: Recall) -> RecallImpact:
    """Trace a recall to everything it reaches, in three queries whatever its size."""
    batches = list(
        _batches_of(recall)
        .select_related("formulation_version__formulation")
        .order_by("lot_number")
    )
    dispenses = list(
        Dispense.objects.filter(batch_id__in=[batch.pk for batch in batches])
        .select_related(*DISPENSE_REACHES)
        .order_by("batch__lot_number", "dispensed_at", "pk")
    )
    orders = _distinct((d.order for d in dispenses), lambda o: (o.pk,))
    patients = _distinct(
        (o.prescription.patient for o in orders), lambda p: (p.last_name, p.first_name, p.pk)
    )
    prescribers = _distinct(
        (o.prescription.prescriber for o in orders), lambda p: (p.last_name, p.first_name, p.pk)
    )
    clinics = _distinct((o.clinic for o in orders), lambda c: (c.name, c.pk))
    unreleased = []
    if recall.ingredient_lot_id is not None:
        unreleased = [batch for batch in batches if batch.status in UNRELEASED_BATCH_STATUSES]
    lists = {
        "batches": batches, "dispenses": dispenses, "orders": orders, "patients": patients,
        "prescribers": prescribers, "clinics": clinics,
    }  # fmt: skip
    return RecallImpact(
        recall=recall,
        unreleased_batches=unreleased,
        notices=list(recall.notices.select_related("clinic")),
        units_dispensed=sum((d.units for d in dispenses), Decimal(0)),
        counts={name: len(items) for name, items in lists.items()},
        **lists,
    )


# Spreadsheet programs run a cell that starts with one of these as a formula (CSV injection,
# OWASP); names and emails typed on the portal are text, so such a cell gets a leading quote.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def recall_impact_csv(recall: Recall) -> str:
    """One row per dispense reached by the recall, for the pharmacist (contains PHI)."""
    return impact_csv(recall_impact(recall))


def impact_csv(impact: RecallImpact) -> str:
    """The CSV of an impact already traced: one row per dispense."""
    output = io.StringIO()
    writer = csv.writer(output)
    writer.writerow(CSV_HEADER)
    for dispense in impact.dispenses:
        order = dispense.order
        patient, prescriber = order.prescription.patient, order.prescription.prescriber
        clinic = order.clinic
        writer.writerow(
            [
                _cell(dispense.batch.lot_number),
                order.number,
                f"{timezone.localtime(dispense.dispensed_at):%Y-%m-%d %H:%M}",
                f"{dispense.units.normalize():f}",
                _cell(patient.full_name),
                patient.date_of_birth.isoformat(),
                _cell(str(prescriber)),
                prescriber.npi,
                _cell(clinic.name),
                _cell(str(clinic.phone)),
                _cell(clinic.label_email),
            ]
        )
    return output.getvalue()
