"""Recalls: of a batch lot, or of an ingredient lot and every batch made from it, traced to every
dispense, order, patient, prescriber and clinic affected, with a notice owed to each clinic.

What a recall does with the units:
- the units a recalled batch still holds are set aside in quarantine (its count goes to 0, so
  no stock count or dispensing sees them), and recorded on the recall (RecallBatch);
- the units it gave to orders still at the pharmacy (compounding, or ready after the final
  check) are pulled back into quarantine too: their dispenses are removed (kept as
  PulledDispense), the order's timeline says so, and the order is dispensed again from another
  batch, a ready one going back to dispensing to be checked and labelled again;
- orders whose patient holds the units (shipped, delivered) are owed a replacement order, which
  a pharmacist orders for all of them in one action (recall_replacements_create);
- the clinics whose patients hold units are owed a notice.

The notices are written here as pending rows in the same transaction as the recall; sending them
is the notifications work's job. The impact and its CSV export carry personal health
information on purpose (they are for the pharmacist): never log them."""

from collections import defaultdict
from collections.abc import Callable, Iterable
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from core.models import User
from core.roles import is_pharmacist
from core.text import counted, required_text
from orders.dosing import units_text
from orders.models import Order, OrderEventKind, OrderStatus
from orders.services import order_event_record, order_replace, order_transition
from orders.workflow import Needs
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
    PulledDispense,
    Recall,
    RecallBatch,
    RecallNotice,
    RecallReplacement,
)
from .notifications import delivery_enqueue
from .selectors import PATIENT_HOLDS_STATUSES
from .webhooks import webhook_recall_notices_publish

# Batches that can still be recalled (moved to recalled) when their ingredient lot is: the
# recall moves are rows of the batch table in pharmacy/batches.py.
RECALLABLE_BATCH_STATUSES = frozenset(
    frm for (frm, to) in BATCH_TRANSITIONS if to == BatchStatus.RECALLED
)
# Orders still at the pharmacy that may hold units of a recalled batch: the units are pulled
# back before they can reach the patient (orders.workflow moves a ready one back to dispensing).
PULLED_BACK_STATUSES = (OrderStatus.COMPOUNDING, OrderStatus.READY)
# How often the locks are taken again when dispenses of the batches keep committing meanwhile.
LOCK_ATTEMPTS = 5


def _check_may_recall(actor: User) -> None:
    if not is_pharmacist(actor):
        raise PermissionDenied("Only a pharmacist may start a recall.")


def _write_notices(recall: Recall, batch_ids: Iterable[int]) -> None:
    """One pending notice per clinic that received units of these batches, with its email and
    its webhooks to the clinic's systems (outbox rows, sent after this transaction commits)."""
    clinic_ids = (
        Dispense.objects.filter(batch_id__in=list(batch_ids))
        .order_by("order__clinic_id")
        .values_list("order__clinic_id", flat=True)
        .distinct()
    )
    notices = RecallNotice.objects.bulk_create(
        RecallNotice(recall=recall, clinic_id=clinic_id) for clinic_id in clinic_ids
    )
    for notice in notices:
        # The email of each notice goes through the outbox, after this transaction commits.
        delivery_enqueue(kind=DeliveryKind.RECALL_NOTICE, recall_notice=notice,
                         recipient=Clinic.objects.get(pk=notice.clinic_id).label_email)  # fmt: skip
    webhook_recall_notices_publish(notices=notices)


# --- Locks: orders first, then batches, as dispensing takes them ---------------------------------


def _orders_holding(batch_ids: Iterable[int]) -> set[int]:
    """The orders still at the pharmacy that were given units of these batches."""
    return set(
        Dispense.objects.filter(
            batch_id__in=list(batch_ids), order__status__in=PULLED_BACK_STATUSES
        ).values_list("order_id", flat=True)
    )


def _lock_batches(batch_ids: Iterable[int]) -> list[Batch]:
    return list(
        Batch.objects.select_for_update(of=("self",))
        .filter(pk__in=list(batch_ids))
        .select_related("formulation_version__formulation")
        .order_by("pk")
    )


def _locked_for_recall(
    lock_batches: Callable[[], list[Batch]], batch_ids: Iterable[int]
) -> tuple[dict[int, Order], list[Batch]]:
    """The orders not shipped yet that hold units of the batches, locked by primary key, then
    what lock_batches locks (the batches by primary key; a lot recall locks its lot first): the
    order dispensing locks in, so a recall and a dispense never wait for each other in a circle.

    A dispense that committed between reading those orders and locking the batches adds an
    order that is not locked: the locks are released (back to a savepoint) and taken again with
    it. Returns the locked orders that hold units of the batches, by id, and the batches."""
    order_ids = _orders_holding(batch_ids)
    for _attempt in range(LOCK_ATTEMPTS):
        savepoint = transaction.savepoint()
        orders = Order.objects.select_for_update(of=("self",)).filter(pk__in=order_ids)
        locked = {order.pk: order for order in orders.order_by("pk")}
        batches = lock_batches()
        holding = _orders_holding(batch.pk for batch in batches)
        if holding <= order_ids:
            transaction.savepoint_commit(savepoint)
            return {pk: order for pk, order in locked.items() if pk in holding}, batches
        transaction.savepoint_rollback(savepoint)
        order_ids |= holding
    raise ValidationError(
        "Units of these batches are being dispensed right now: start the recall again in a moment.",
        code="dispensing_meanwhile",
    )


# --- Quarantine ---------------------------------------------------------------------------------


def _quarantine_note(batch: Batch, in_stock: Decimal, pulled: list[Dispense]) -> str:
    """'Quarantined: 70 capsules (40 capsules in stock, 30 capsules pulled back from 1 order
    not shipped: LDN-000012).'"""
    unit = batch.formulation_version.formulation.unit
    taken = sum((d.units for d in pulled), Decimal(0))
    text = f"Quarantined: {units_text(in_stock + taken, unit)}"
    if pulled:
        numbers = sorted({d.order.number for d in pulled})
        text += (
            f" ({units_text(in_stock, unit)} in stock, {units_text(taken, unit)} pulled back "
            f"from {counted(len(numbers), 'order', 'orders')} not shipped: {', '.join(numbers)})"
        )
    return f"{text}."


def _recall_and_quarantine(
    *, recall: Recall, batches: list[Batch], holding: dict[int, Order], actor: User, note: str
) -> None:
    """Move each (locked) batch to recalled with its units set aside: its count to 0, and its
    dispenses to the (locked) orders still at the pharmacy pulled back."""
    pulled = list(
        Dispense.objects.filter(batch__in=batches, order_id__in=list(holding))
        .select_related("line__formulation")
        .order_by("order_id", "pk")
    )
    by_batch: dict[int, list[Dispense]] = defaultdict(list)
    for dispense in pulled:
        dispense.order = holding[dispense.order_id]
        by_batch[dispense.batch_id].append(dispense)
    for batch in batches:
        in_stock, mine = batch.units_remaining, by_batch[batch.pk]
        # The row is locked: its count is set aside whole, in this transaction.
        batch_transition(
            batch=batch,
            to_status=BatchStatus.RECALLED,
            actor=actor,
            note=f"{note} {_quarantine_note(batch, in_stock, mine)}",
            changes={"units_remaining": Decimal(0)},
        )
        quarantine = RecallBatch.objects.create(
            recall=recall,
            batch=batch,
            units_in_stock=in_stock,
            units_pulled=sum((d.units for d in mine), Decimal(0)),
        )
        PulledDispense.objects.bulk_create(
            PulledDispense(
                recalled_batch=quarantine,
                order_id=d.order_id,
                line_id=d.line_id,
                units=d.units,
                dispensed_by_id=d.dispensed_by_id,
                dispensed_at=d.dispensed_at,
                scanned_code=d.scanned_code,
            )
            for d in mine
        )
    Dispense.objects.filter(pk__in=[d.pk for d in pulled]).delete()
    lots = {batch.pk: batch.lot_number for batch in batches}
    by_order: dict[int, list[Dispense]] = defaultdict(list)
    for dispense in pulled:
        by_order[dispense.order_id].append(dispense)
    for order_id, dispenses in sorted(by_order.items()):
        _order_pulled_back(holding[order_id], dispenses, lots, recall=recall, actor=actor)


def _order_pulled_back(
    order: Order, dispenses: list[Dispense], lots: dict[int, str], *, recall: Recall, actor: User
) -> None:
    """The order's timeline (which the prescriber sees) says what was pulled back; a checked
    order goes back to dispensing, to be dispensed, checked and labelled again."""
    given: dict[tuple[int, int], Decimal] = defaultdict(Decimal)  # (line, batch) -> units
    for d in dispenses:
        given[d.line_id, d.batch_id] += d.units
    lines = {d.line_id: d.line for d in dispenses}
    said = "; ".join(
        f"{units_text(units, lines[line_id].formulation.unit)} of "
        f"{lines[line_id].formulation.name} (batch {lots[batch_id]})"
        for (line_id, batch_id), units in given.items()
    )
    recalled = sorted({lots[d.batch_id] for d in dispenses})
    order_event_record(
        order=order,
        kind=OrderEventKind.RECALL_PULLED,
        actor=actor,
        note=f"Recall of batch {', '.join(recalled)} ({recall.reason}): {said} pulled back "
        "before shipping; the order is dispensed again from another batch.",
        parameters={"recall": recall.pk, "batches": recalled, "units": said},
    )
    if order.status == OrderStatus.READY:
        order_transition(
            order=order,
            to_status=OrderStatus.COMPOUNDING,
            actor=actor,
            satisfies=Needs.RECALL,
            note="Back to dispensing: the recalled units were pulled back; the order is "
            "dispensed, checked and labelled again.",
        )


# --- Starting a recall --------------------------------------------------------------------------


def batch_recall(*, batch: Batch, actor: User, reason: str) -> Recall:
    """Recall a released or quarantined batch: it becomes recalled (its event note is the
    reason and what was quarantined), its units are set aside, those given to orders not
    shipped are pulled back, and every clinic whose patients received units of it is owed a
    notice."""
    _check_may_recall(actor)
    reason = required_text(reason, "reason for the recall")
    with transaction.atomic():
        holding, batches = _locked_for_recall(lambda: _lock_batches([batch.pk]), [batch.pk])
        if not batches:
            raise ValidationError("That batch does not exist.", code="batch_missing")
        recall = Recall.objects.create(batch=batches[0], reason=reason, initiated_by=actor)
        _recall_and_quarantine(
            recall=recall, batches=batches, holding=holding, actor=actor, note=reason
        )
        _write_notices(recall, [batch.pk])
    return recall


def ingredient_lot_recall(*, lot: IngredientLot, actor: User, reason: str) -> Recall:
    """Recall an ingredient lot and every released or quarantined batch made from it, as
    batch_recall does each.

    Batches made from it that are not released yet (in progress, awaiting QC) keep their status
    and are listed in the impact: they can no longer be released. Rows are locked: the orders
    holding units of those batches, the lot, then its batches by primary key."""
    _check_may_recall(actor)
    reason = required_text(reason, "reason for the recall")
    made_from = BatchIngredient.objects.filter(lot=lot).values("batch_id")

    def lock_lot_and_batches() -> list[Batch]:
        lot_transition(lot=lot, to_status=LotStatus.RECALLED, actor=actor, note=reason)
        return _lock_batches(made_from.values_list("batch_id", flat=True))

    with transaction.atomic():
        holding, batches = _locked_for_recall(
            lock_lot_and_batches, made_from.values_list("batch_id", flat=True)
        )
        recall = Recall.objects.create(ingredient_lot=lot, reason=reason, initiated_by=actor)
        _recall_and_quarantine(
            recall=recall,
            batches=[batch for batch in batches if batch.status in RECALLABLE_BATCH_STATUSES],
            holding=holding,
            actor=actor,
            note=f"Made from recalled ingredient lot {lot} ({lot.manufacturer}): {reason}",
        )
        _write_notices(recall, [batch.pk for batch in batches])
    return recall


# --- Replacements -------------------------------------------------------------------------------


def recall_replacements_create(*, recall: Recall, actor: User) -> list[Order]:
    """Replacement orders for the patients who hold units of the batches this recall recalled:
    for every such order (shipped or delivered) with no replacement for this recall yet, a new
    order of the same fill giving again the units dispensed to it from those batches
    (orders.services.order_replace), all in one transaction; returns them by the number of the
    order they replace.

    The recall row is locked first, so a second request (two pharmacists at once) waits, then
    finds the replacements made and makes none; then the orders, by primary key."""
    if not is_pharmacist(actor):
        raise PermissionDenied("Only a pharmacist may order replacements.")
    with transaction.atomic():
        locked = Recall.objects.select_for_update().get(pk=recall.pk)
        replaced = RecallReplacement.objects.filter(recall=locked).values("order_id")
        owed = Dispense.objects.filter(
            batch__recall_quarantine__recall=locked, order__status__in=PATIENT_HOLDS_STATUSES
        ).exclude(order_id__in=replaced)
        order_ids = set(owed.values_list("order_id", flat=True))
        orders = list(
            Order.objects.select_for_update(of=("self",))
            .select_related("prescription")
            .filter(pk__in=order_ids, status__in=PATIENT_HOLDS_STATUSES)
            .order_by("pk")
        )
        units: dict[int, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        lots: dict[int, set[str]] = defaultdict(set)
        received = Dispense.objects.filter(
            batch__recall_quarantine__recall=locked, order__in=orders
        ).values_list("order_id", "line_id", "units", "batch__lot_number")
        for order_id, line_id, count, lot_number in received:
            units[order_id][line_id] += count
            lots[order_id].add(lot_number)
        made = []
        for order in orders:
            replacement = order_replace(
                order=order,
                units=dict(units[order.pk]),
                actor=actor,
                why=f"recall of batch {', '.join(sorted(lots[order.pk]))}",
            )
            RecallReplacement.objects.create(recall=locked, order=order, replacement=replacement)
            made.append(replacement)
    return made


# --- The clinic's confirmation ------------------------------------------------------------------


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
