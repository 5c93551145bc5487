"""Dispensing: units of released batches given to the lines of an order.

Units are dispensed from released, unexpired, unrecalled batches only, earliest beyond-use date
first. Every write locks the order row first, then batch rows in
primary-key order, and takes units with a conditional F() update, so many people dispensing at
once can neither deadlock nor take more units than a batch holds."""

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import F, Min, Sum
from django.utils import timezone

from core.models import User
from core.numbers import quantity_text
from core.roles import is_pharmacist, is_technician
from core.text import required_text
from orders.checks import prescription_regimen
from orders.dosing import DosageForm, days_in_use
from orders.models import (
    DISPENSABLE_STATUSES,
    UNFILLED_STATUSES,
    Order,
    OrderKind,
    OrderStatus,
    PrescriptionLine,
)
from orders.services import order_fill_check, order_partial_fill, order_transition

from .models import Batch, BatchStatus, Dispense
from .selectors import units_dispensed

# An order is dispensed once a pharmacist verified it; the first dispense starts compounding.
DISPENSING_STARTED = "Dispensing started."
UNITS_PLACES = Decimal("0.01")  # Dispense.units and Batch.units_remaining keep 2 decimal places


@dataclass(frozen=True)
class DispenseResult:
    """What dispense_allocate did: the rows it wrote, and what the person should know."""

    dispenses: list[Dispense]
    notes: list[str]


def _status_words(label: str) -> str:
    """'Awaiting QC' -> 'awaiting QC': lower case, acronyms kept."""
    return label[:1].lower() + label[1:]


def _ensure_may_dispense(actor: User) -> None:
    if not (is_pharmacist(actor) or is_technician(actor)):
        raise PermissionDenied("Only a pharmacist or a pharmacy technician may dispense.")


def _check_units(units: Decimal) -> None:
    if not isinstance(units, Decimal):  # quantities are Decimal, never float
        raise TypeError(f"units must be a Decimal, not {type(units).__name__}")
    if not units.is_finite() or units <= 0:
        raise ValidationError(
            f"Dispense a positive number of units, not {units}.", code="units_not_positive"
        )
    if units != units.quantize(UNITS_PLACES):
        raise ValidationError(
            f"Units are counted to 2 decimal places; {units} has more.", code="units_precision"
        )


def _locked_order(order: Order) -> Order:
    """The order row, locked (always the first lock a dispensing service takes), if it may be
    dispensed now."""
    # Only the order row: the prescription is joined for reading, not locked.
    locked = (
        Order.objects.select_for_update(of=("self",))
        .select_related("prescription")
        .get(pk=order.pk)
    )
    if locked.status not in DISPENSABLE_STATUSES:
        status = _status_words(OrderStatus(locked.status).label)
        raise ValidationError(
            f"Order {locked.number} is {status}: only a verified order, or one being "
            "compounded, can be dispensed.",
            code="order_not_dispensable",
        )
    return locked


def _locked_batches(queryset: models.QuerySet) -> list[Batch]:
    """Batch rows locked in primary-key order so that concurrent dispensing cannot
    deadlock. Only the batch rows are locked, not the formulation rows joined for reading."""
    return list(
        queryset.select_for_update(of=("self",))
        .select_related("formulation_version__formulation")
        .order_by("pk")
    )


def _refuse_unfillable(order: Order) -> None:
    """Every rule again, against the patient, prescriber and orders as they are now: an error
    that arose since verification (the patient now takes opioids, the prescriber was
    suspended, the prescription expired) stops dispensing too."""
    check = order_fill_check(order)
    if check.errors:
        raise ValidationError(
            f"Order {order.number} cannot be dispensed: {check.refusal()}", code="fill_refused"
        )


def _supply_end(order: Order, today: datetime.date) -> datetime.date:
    """The last day the patient takes doses from this fill, if it is dispensed today."""
    return today + datetime.timedelta(days=order.prescription.days_supply)


def use_end(order: Order, line: PrescriptionLine, units: Decimal, today: datetime.date):
    """The day by which the patient has taken `units` of the line given today as a part of its
    fill (a partial fill, or the rest that follows one): the fill's schedule says on which days
    they are taken, after the units of the line the fill gave before (orders.dosing.days_in_use).
    Counted from the fill's first dispense, or from today when the patient ran out earlier."""
    fill = Dispense.objects.filter(
        line_id=line.pk,
        order__prescription_id=order.prescription_id,
        order__fill_number=order.fill_number,
        order__kind__in=(OrderKind.NEW, OrderKind.REFILL, OrderKind.REMAINDER),
    ).exclude(order__status__in=UNFILLED_STATUSES)
    given = fill.aggregate(before=Sum("units"), started=Min("dispensed_at"))
    started = timezone.localdate(given["started"]) if given["started"] else today
    formulation = line.formulation
    strength = formulation.strength_mg if formulation.dosage_form == DosageForm.CAPSULE else None
    regimen = prescription_regimen(order.prescription, order.schedule)
    first, last = days_in_use(regimen, strength, before=given["before"] or Decimal(0), units=units)
    return max(
        started + datetime.timedelta(days=last), today + datetime.timedelta(days=last - first + 1)
    )


def _part_end(order: Order, need: "_LineNeed", units: Decimal, today) -> datetime.date | None:
    """When `units` of the line's need are a part of its fill: the day they are used up (the
    BUD must reach it); None when the whole days' supply is the rule (_supply_end)."""
    if units < need.units or order.kind == OrderKind.REMAINDER:
        return use_end(order, need.line, units, today)
    return None


def _refuse_short_bud(
    batch: Batch, order: Order, *, today: datetime.date, part_end: datetime.date | None = None
) -> None:
    """USP <795>: the patient must not hold units past their BUD, so the batch's BUD must
    cover the whole days' supply (the same rule as automatic allocation), or, for a part of a
    fill, the day its units are used up (`part_end`)."""
    if part_end is not None:
        if batch.beyond_use_date < part_end:
            raise ValidationError(
                f"Batch {batch.lot_number}'s BUD {batch.beyond_use_date:%Y-%m-%d} is before "
                f"{part_end:%Y-%m-%d}, when these units are used up: choose a batch with a "
                "later BUD, or dispense fewer.",
                code="batch_bud_too_short",
            )
        return
    supply_end = _supply_end(order, today)
    if batch.beyond_use_date < supply_end:
        days = order.prescription.days_supply
        raise ValidationError(
            f"Batch {batch.lot_number}'s BUD {batch.beyond_use_date:%Y-%m-%d} is before the end "
            f"of the {days}-day supply ({supply_end:%Y-%m-%d}): choose a batch with a later "
            "BUD, or dispense a partial fill.",
            code="batch_bud_too_short",
        )


def _start_compounding(order: Order, actor: User) -> Order:
    """A verified order moves to compounding with its first dispense (one event row)."""
    if order.status != OrderStatus.VERIFIED:
        return order
    return order_transition(
        order=order, to_status=OrderStatus.COMPOUNDING, actor=actor, note=DISPENSING_STARTED
    )


def _refuse_unusable_batch(batch: Batch, *, today: datetime.date) -> None:
    if batch.status != BatchStatus.RELEASED:
        status = _status_words(BatchStatus(batch.status).label)
        raise ValidationError(
            f"Batch {batch.lot_number} is {status}: only released batches are dispensed.",
            code="batch_not_released",
        )
    if batch.beyond_use_date is None:
        raise ValidationError(
            f"Batch {batch.lot_number} has no beyond-use date: it cannot be dispensed.",
            code="batch_without_bud",
        )
    if batch.beyond_use_date < today:
        raise ValidationError(
            f"Batch {batch.lot_number} expired on {batch.beyond_use_date:%Y-%m-%d} "
            "(its beyond-use date): it cannot be dispensed.",
            code="batch_expired",
        )


def _dispensed_for_line(order: Order, line: PrescriptionLine) -> Decimal:
    total = Dispense.objects.filter(order=order, line=line).aggregate(total=Sum("units"))["total"]
    return total or Decimal("0")


def dispense_from_batch(
    *,
    order: Order,
    line: PrescriptionLine,
    batch: Batch,
    units: Decimal,
    actor: User,
    rules_checked: bool = False,
    scanned: str = "",
    bud_checked: bool = False,
) -> Dispense:
    """Give `units` of `batch` to `line` of `order`, or raise ValidationError saying why not.

    The batch must be released, unrecalled and its BUD must cover the days' supply; every rule
    of the prescription runs again (dispense_allocate runs them once for all its lines:
    `rules_checked`). A verified order moves to compounding with its first dispense, in the same
    transaction."""
    _ensure_may_dispense(actor)
    _check_units(units)
    with transaction.atomic():
        locked_order = _locked_order(order)
        if not rules_checked:
            _refuse_unfillable(locked_order)
        # Read again: the line must be one this order dispenses.
        stored_line = (
            PrescriptionLine.objects.of_order(locked_order)
            .select_related("formulation")
            .filter(pk=line.pk)
            .first()
        )
        if stored_line is None:
            raise ValidationError(
                f"That prescription line is not a line of order {locked_order.number}.",
                code="line_not_of_order",
            )
        locked_batch = next(iter(_locked_batches(Batch.objects.filter(pk=batch.pk))), None)
        if locked_batch is None:
            raise ValidationError("That batch does not exist.", code="batch_missing")
        today = timezone.localdate()
        _refuse_unusable_batch(locked_batch, today=today)
        if not bud_checked:  # dispensing a part of a fill checked it against the part's end
            part_end = None
            if locked_order.kind == OrderKind.REMAINDER:
                part_end = use_end(locked_order, stored_line, units, today)
            _refuse_short_bud(locked_batch, locked_order, today=today, part_end=part_end)
        formulation = stored_line.formulation
        if locked_batch.formulation_version.formulation_id != stored_line.formulation_id:
            raise ValidationError(
                f"Batch {locked_batch.lot_number} is {locked_batch.formulation}, but the line "
                f"is for {formulation}.",
                code="wrong_formulation",
            )
        if units > locked_batch.units_remaining:
            raise ValidationError(
                f"Batch {locked_batch.lot_number} has only "
                f"{quantity_text(locked_batch.units_remaining)} units left, not enough for "
                f"{quantity_text(units)}.",
                code="not_enough_units",
            )
        # Never more than prescribed: the order row lock keeps this sum current.
        dispensed = _dispensed_for_line(locked_order, stored_line)
        if dispensed + units > stored_line.units:
            raise ValidationError(
                f"{formulation} for order {locked_order.number}: "
                f"{quantity_text(stored_line.units)} "
                f"{'prescribed' if stored_line.units == stored_line.quantity else 'on it'}, "
                f"{quantity_text(dispensed)} already dispensed; {quantity_text(units)} more would "
                "be too many.",
                code="more_than_prescribed",
            )
        locked_order = _start_compounding(locked_order, actor)
        # The row is locked, so this cannot miss; the condition keeps the counter from ever
        # going below zero all the same (with the check constraint on the table behind it).
        taken = Batch.objects.filter(pk=locked_batch.pk, units_remaining__gte=units).update(
            units_remaining=F("units_remaining") - units
        )
        if taken != 1:
            raise ValidationError(
                f"Batch {locked_batch.lot_number} has fewer than {quantity_text(units)} units "
                "left.",
                code="not_enough_units",
            )
        locked_batch.units_remaining -= units
        return Dispense.objects.create(
            order=locked_order, line=stored_line, batch=locked_batch, units=units,
            dispensed_by=actor, scanned_code=scanned,
        )  # fmt: skip


@dataclass
class _LineNeed:
    line: PrescriptionLine
    units: Decimal


def _locked_needs(order: Order) -> tuple[Order, list[_LineNeed]]:
    """The order locked for dispensing and what its lines still need; when something is
    needed, every rule has run again on the order (refused with the reason)."""
    locked_order = _locked_order(order)
    needs = line_needs(locked_order)
    if needs:
        _refuse_unfillable(locked_order)
    return locked_order, needs


def _already_dispensed(order: Order) -> DispenseResult:
    return DispenseResult(dispenses=[], notes=[f"Order {order.number} is already fully dispensed."])


def _needs_end(order: Order, needs: list[_LineNeed], today) -> datetime.date:
    """The day a batch's BUD must reach to fill these needs: the end of the days' supply, or
    for the rest of a partial fill the day its last units are used up."""
    if order.kind != OrderKind.REMAINDER:
        return _supply_end(order, today)
    return max(use_end(order, need.line, need.units, today) for need in needs)


def line_needs(order: Order) -> list[_LineNeed]:
    """The lines of the order not yet fully dispensed, with the units each still needs."""
    dispensed = units_dispensed(order)
    needs = []
    lines = PrescriptionLine.objects.of_order(order).select_related("formulation")
    for line in lines.order_by("position"):
        missing = line.units - dispensed.get(line.pk, Decimal("0"))
        if missing > 0:
            needs.append(_LineNeed(line=line, units=missing))
    return needs


def dispense_allocate(*, order: Order, actor: User) -> DispenseResult:
    """Fill every line of the order that is not yet fully dispensed, from usable batches of the
    line's formulation, earliest beyond-use date first (then the lowest primary key), from several
    batches if needed.

    A batch whose BUD falls before the end of the days' supply is skipped with a note: the
    patient would hold units past their BUD. When any line cannot be filled, nothing is
    dispensed (ValidationError), and the order keeps its status."""
    _ensure_may_dispense(actor)
    with transaction.atomic():
        locked_order, needs = _locked_needs(order)
        if not needs:
            return _already_dispensed(locked_order)
        prescription = locked_order.prescription

        today = timezone.localdate()
        supply_end = _needs_end(locked_order, needs, today)
        formulation_ids = {need.line.formulation_id for need in needs}
        candidates = _locked_batches(
            Batch.objects.filter(
                status=BatchStatus.RELEASED,
                formulation_version__formulation_id__in=formulation_ids,
                units_remaining__gt=0,
                beyond_use_date__gte=today,
            )
        )
        notes: list[str] = []
        usable: list[Batch] = []
        for batch in sorted(candidates, key=lambda b: (b.beyond_use_date, b.pk)):
            if batch.beyond_use_date < supply_end:
                end = f"the end of the {prescription.days_supply}-day supply"
                if locked_order.kind == OrderKind.REMAINDER:
                    end = "the day the rest of the fill is used up"
                notes.append(
                    f"Skipped batch {batch.lot_number}: its BUD {batch.beyond_use_date:%Y-%m-%d} "
                    f"is before {end} ({supply_end:%Y-%m-%d})."
                )
            else:
                usable.append(batch)

        plan: list[tuple[PrescriptionLine, Batch, Decimal]] = []
        shortages: list[str] = []
        left = {batch.pk: batch.units_remaining for batch in usable}
        for need in needs:
            formulation_id = need.line.formulation_id
            mine = [b for b in usable if b.formulation_version.formulation_id == formulation_id]
            available = sum((left[b.pk] for b in mine), Decimal("0"))
            if available < need.units:
                shortages.append(
                    f"Not enough released stock of {need.line.formulation}: "
                    f"{quantity_text(need.units)} needed, {quantity_text(available)} usable."
                )
                continue
            wanted = need.units
            for batch in mine:
                take = min(wanted, left[batch.pk])
                if take > 0:
                    plan.append((need.line, batch, take))
                    left[batch.pk] -= take
                    wanted -= take
                if wanted == 0:
                    break
        if shortages:
            raise ValidationError(
                [ValidationError(text, code="not_enough_stock") for text in shortages]
                + [ValidationError(text, code="batch_bud_too_short") for text in notes]
            )

        if locked_order.status == OrderStatus.VERIFIED:
            locked_order = _start_compounding(locked_order, actor)
            notes.insert(0, DISPENSING_STARTED)
        dispenses = [
            dispense_from_batch(
                order=locked_order, line=line, batch=b, units=units, actor=actor, rules_checked=True
            )
            for line, b, units in plan
        ]
    return DispenseResult(dispenses=dispenses, notes=notes)


# --- Dispensing what was scanned ------------------------------------------------------------------


class ScansRefused(Exception):
    """Scanned lots that do not fit their lines, with what each line expected (by line id):
    nothing was dispensed."""

    def __init__(self, problems: dict[int, str]):
        super().__init__(" ".join(problems.values()))
        self.problems = problems


def scan_text(code: str | None) -> str:
    """What a keyboard-wedge scanner typed, without the spaces and line ends around it."""
    return " ".join((code or "").split())


def _released_lots(
    needs: list[_LineNeed], *, bud_from: datetime.date, enough: bool
) -> dict[int, list[Batch]]:
    """For each line still to dispense, the released lots of its product whose BUD is
    `bud_from` or later and that hold units (`enough`: all the line needs), earliest BUD
    first (one query)."""
    if not needs:
        return {}
    batches = list(
        Batch.objects.filter(
            status=BatchStatus.RELEASED,
            formulation_version__formulation_id__in={need.line.formulation_id for need in needs},
            beyond_use_date__gte=bud_from,
            units_remaining__gt=0,
        )
        .select_related("formulation_version")
        .order_by("beyond_use_date", "pk")
    )
    return {
        need.line.pk: [
            batch for batch in batches
            if batch.formulation_version.formulation_id == need.line.formulation_id
            and (not enough or batch.units_remaining >= need.units)
        ]
        for need in needs
    }  # fmt: skip


def expected_lots(order: Order, needs: list[_LineNeed]) -> dict[int, list[Batch]]:
    """For each line still to dispense, the lots that could fill it now (released, in date,
    their BUD covering the days' supply, enough units), earliest BUD first: what the
    technician is asked to scan."""
    if not needs:
        return {}
    bud_from = _needs_end(order, needs, timezone.localdate())
    return _released_lots(needs, bud_from=bud_from, enough=True)


def lots_in_stock(needs: list[_LineNeed]) -> dict[int, list[Batch]]:
    """For each line still to dispense, the released, in-date lots of its product with units
    left, earliest BUD first: what a partial fill could give now (one query)."""
    return _released_lots(needs, bud_from=timezone.localdate(), enough=False)


def _scan_problem(
    code: str, need: _LineNeed, order: Order, today, part_end: datetime.date | None = None
) -> tuple[str, Batch | None]:
    """Why the scanned lot cannot fill the line's need ("" when it can), and its batch;
    `part_end`: the day the units are used up when they are a part of the fill."""
    product = need.line.formulation
    if not code:
        return f"Scan the lot on the bottle of {product}.", None
    batch = (
        Batch.objects.filter(lot_number__iexact=code)
        .select_related("formulation_version__formulation")
        .first()
    )
    if batch is None:
        return f"Lot {code} is not a batch of this pharmacy: scan a bottle of {product}.", None
    if batch.formulation_version.formulation_id != product.pk:
        scanned = batch.formulation_version.formulation
        return (
            f"Lot {batch.lot_number} is {scanned}, not {product}: scan a bottle of {product}.",
            None,
        )
    try:
        _refuse_unusable_batch(batch, today=today)
        _refuse_short_bud(batch, order, today=today, part_end=part_end)
    except ValidationError as refused:
        return " ".join(refused.messages), None
    if batch.units_remaining < need.units:
        return (
            f"Lot {batch.lot_number} has {quantity_text(batch.units_remaining)} left and "
            f"{product} needs {quantity_text(need.units)}: scan a bottle with enough."
        ), None
    return "", batch


def dispense_scanned(*, order: Order, actor: User, scans: Mapping[int, str]) -> DispenseResult:
    """Dispense each line still to fill from the batch whose lot the technician scanned on its
    bottle (`scans`: line id -> what the scanner read). A missing scan, a lot of another product
    or strength, or a lot that cannot be dispensed refuses them all (ScansRefused says what each
    line expected); each dispense keeps what was scanned."""
    _ensure_may_dispense(actor)
    with transaction.atomic():
        locked_order, needs = _locked_needs(order)
        if not needs:
            return _already_dispensed(locked_order)
        today = timezone.localdate()
        problems, picks = {}, []
        for need in needs:
            code = scan_text(scans.get(need.line.pk))
            part_end = _part_end(locked_order, need, need.units, today)
            problem, batch = _scan_problem(code, need, locked_order, today, part_end)
            if problem:
                problems[need.line.pk] = problem
            else:
                picks.append((need, batch, code))
        if problems:
            raise ScansRefused(problems)
        notes = [DISPENSING_STARTED] if locked_order.status == OrderStatus.VERIFIED else []
        dispenses = [
            dispense_from_batch(
                order=locked_order,
                line=need.line,
                batch=batch,
                units=need.units,
                actor=actor,
                rules_checked=True,
                scanned=code,
                bud_checked=True,
            )
            for need, batch, code in picks
        ]
    return DispenseResult(dispenses=dispenses, notes=notes)


class PartialRefused(ScansRefused):
    """A partial fill refused line by line (units or scans): nothing was dispensed."""


def _units_problem(text: str | None, need: _LineNeed) -> tuple[str, Decimal]:
    """The units typed for a line of a partial fill (blank: all it needs), or why not."""
    text = (text or "").strip()
    if not text:
        return "", need.units
    try:
        units = Decimal(text)
    except ArithmeticError:
        return f"“{text}” is not a number of units.", Decimal(0)
    most = quantity_text(need.units)
    if not units.is_finite() or units < 0 or units > need.units:
        return f"Dispense between 0 and {most} {need.line.formulation.unit} now.", Decimal(0)
    if units != units.quantize(UNITS_PLACES):
        return f"Units are counted to 2 decimal places; {text} has more.", Decimal(0)
    return "", units


def dispense_partial(
    *,
    order: Order,
    actor: User,
    scans: Mapping[int, str],
    units: Mapping[int, str],
    reason: str,
) -> tuple[DispenseResult, Order]:
    """A partial fill, when stock or the BUD of the batches there covers only part of the
    days' supply: each line gives the units typed for it now (`units`: line id -> text; blank
    means all it needs, 0 none) from the lot scanned on its bottle, whose BUD must reach the
    day those units are used up; the rest of every line becomes the next order of the same
    fill (returned), with its own label and BUD, which the prescriber sees on both timelines.
    A refused line (PartialRefused says why, per line) dispenses nothing."""
    _ensure_may_dispense(actor)
    reason = required_text(reason, "reason for the partial fill")
    with transaction.atomic():
        locked_order, needs = _locked_needs(order)
        if not needs:
            raise ValidationError(
                f"Order {locked_order.number} is already fully dispensed.", code="dispensed"
            )
        today = timezone.localdate()
        problems, picks = {}, []
        for need in needs:
            problem, amount = _units_problem(units.get(need.line.pk), need)
            if not problem and amount > 0:
                code = scan_text(scans.get(need.line.pk))
                part = _LineNeed(line=need.line, units=amount)
                part_end = _part_end(locked_order, need, amount, today)
                problem, batch = _scan_problem(code, part, locked_order, today, part_end)
                picks.append((part, batch, code))
            if problem:
                problems[need.line.pk] = problem
        if problems:
            raise PartialRefused(problems)
        if not picks or sum(p.units for p, _, _ in picks) == sum(n.units for n in needs):
            raise ValidationError(
                "A partial fill gives some units now and fewer than the whole: set the units "
                "to give now on at least one line, below what it needs.",
                code="not_partial",
            )
        notes = [DISPENSING_STARTED] if locked_order.status == OrderStatus.VERIFIED else []
        dispenses = [
            dispense_from_batch(
                order=locked_order, line=part.line, batch=batch, units=part.units, actor=actor,
                rules_checked=True, scanned=code, bud_checked=True,
            )
            for part, batch, code in picks
        ]  # fmt: skip
        rest = order_partial_fill(
            order=locked_order, filled=units_dispensed(locked_order), actor=actor, reason=reason
        )
    notes.append(f"The rest follows as order {rest.number}.")
    return DispenseResult(dispenses=dispenses, notes=notes), rest
