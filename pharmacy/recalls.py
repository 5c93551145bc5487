"""Recalls: of a batch lot, or of an ingredient lot and every batch made from it, traced to every
dispense, order, patient, prescriber and clinic affected, with a notice owed to each clinic.

The notices are written here as pending rows in the same transaction as the recall; sending them
is the notifications work's job. The impact and its CSV export carry personal health
information on purpose (they are for the pharmacist): never log them."""

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from core.models import User
from core.roles import is_pharmacist
from core.text import required_text
from prescribers.models import Clinic
from prescribers.selectors import portal_memberships

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
)
from .notifications import delivery_enqueue

B, L = BatchStatus, LotStatus

# Batches that can still be recalled (moved to recalled) when their ingredient lot is: the
# recall moves are rows of the batch table in pharmacy/batches.py.
RECALLABLE_BATCH_STATUSES = frozenset(
    frm for (frm, to) in BATCH_TRANSITIONS if to == BatchStatus.RECALLED
)


def _check_may_recall(actor: User) -> None:
    if not is_pharmacist(actor):
        raise PermissionDenied("Only a pharmacist may start a recall.")


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
    reason = required_text(reason, "reason for the recall")
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
    reason = required_text(reason, "reason for the recall")
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


def recall_notice_acknowledge(*, notice: RecallNotice, actor: User) -> RecallNotice:
    """A member of the notified clinic confirms that its patients were told: recorded with their
    name and the time, once (a second confirmation changes nothing and says who was first)."""
    if not any(m.clinic_id == notice.clinic_id for m in portal_memberships(actor)):
        raise PermissionDenied("Only a member of the notified clinic may confirm its notice.")
    with transaction.atomic():
        notice = RecallNotice.objects.select_for_update().get(pk=notice.pk)
        if notice.acknowledged_at is None:
            notice.acknowledged_by, notice.acknowledged_at = actor, timezone.now()
            notice.save(update_fields=["acknowledged_by", "acknowledged_at"])
    return notice
