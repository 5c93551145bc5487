"""Writes about patients, prescriptions and orders. Callers validate input; these check who
may write and every rule, then write."""

import datetime
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.models import User
from core.state_machine import apply_transition
from core.text import required_text
from prescribers.models import Clinic, Prescriber
from prescribers.selectors import clinic_prescribers, is_staff_of_clinic, prescriber_of_clinic

from . import dosing, icd10
from .checks import (
    Catalogue,
    FillCheck,
    check_fill,
    check_new_prescription,
    unconfirmed_message,
)
from .dosing import DosageForm, Finding, Regimen
from .models import (
    STATUS_KEPT_KINDS,
    FillSchedule,
    Formulation,
    Order,
    OrderEvent,
    OrderEventKind,
    OrderKind,
    OrderQuantity,
    OrderStatus,
    Patient,
    PatientAccess,
    Prescription,
    PrescriptionLine,
    PrescriptionStep,
)
from .workflow import (
    PRESCRIBER_SIGNATURE_MEANING,
    SIGNATURE_MEANING,
    TRANSITIONS,
    Needs,
    may_move,
)

PATIENT_FIELDS = frozenset(Patient.EDITABLE_FIELDS)


def ensure_may_edit_patients(*, actor: User, clinic_id: int) -> None:
    """An approved prescriber and the staff of a clinic edit its patients; the pharmacy's
    staff need the permission."""
    if actor.is_staff:
        if actor.is_active and actor.has_perm("orders.change_patient"):
            return
    elif prescriber_of_clinic(actor, clinic_id) is not None or is_staff_of_clinic(actor, clinic_id):
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


class PrescriptionNotAccepted(Exception):
    """The rules refused the prescription or the fill: errors, or warnings the person did not
    confirm (with a reason where one is needed)."""

    def __init__(self, findings: list[Finding], unacknowledged: list[Finding], earlier=()):
        super().__init__("The prescription was not accepted.")
        self.findings = findings
        self.unacknowledged = unacknowledged
        self.earlier = earlier  # (key, message) of the warnings confirmed before

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == dosing.Severity.ERROR]

    def __str__(self) -> str:
        problems = self.errors or self.unacknowledged
        return " ".join(f.message for f in problems) or "The prescription was not accepted."


class RefillRefused(PrescriptionNotAccepted):
    """A refill the rules refuse now (expired, no refills left, rejected, ...)."""


def _accepted(check: FillCheck, *, acknowledged: Iterable[str], reason: str = "") -> list[dict]:
    """The acknowledgements to record, or the refusal: an error, or a new warning that was not
    confirmed (with a reason where one is needed)."""
    unacknowledged = check.unacknowledged(ticked=acknowledged, reason=reason)
    if check.errors or unacknowledged:
        raise PrescriptionNotAccepted(check.findings, unacknowledged, check.earlier)
    return check.acknowledgements(ticked=acknowledged, reason=reason)


def _ensure_prescriber_of(actor: User, clinic_id: int):
    prescriber = prescriber_of_clinic(actor, clinic_id)
    if prescriber is None:
        raise PermissionDenied("Only an approved prescriber of the patient's clinic may order.")
    return prescriber


class SignerRefused(ValidationError):
    """Clinic staff named no prescriber of the clinic to sign their draft."""


def _ordering_for(
    actor: User, clinic_id: int, signer: Prescriber | None, *, draft: bool = False
) -> tuple[Prescriber, bool]:
    """The prescriber an order is written for, and whether it is a draft. A prescriber of the
    clinic orders in their own name and signs as they submit; the clinic's staff draft for a
    prescriber of the clinic (`signer`), who signs it later. A prescriber drafts too when asked
    (`draft`: the clinic's system sent the order with a key that does not sign), for `signer`
    or for themselves."""
    own = prescriber_of_clinic(actor, clinic_id)
    if own is not None and not draft and (signer is None or signer.pk == own.pk):
        return own, False
    if draft and own is not None:
        signer = signer or own
    elif not is_staff_of_clinic(actor, clinic_id):
        raise PermissionDenied(
            "Only a prescriber of the patient's clinic, or its staff, may order."
        )
    if signer is None or not clinic_prescribers(clinic_id).filter(pk=signer.pk).exists():
        raise SignerRefused("Choose a prescriber of this clinic to sign the draft.", code="signer")
    return signer, True


def _patient_asking(actor: User, prescription: Prescription) -> Prescriber:
    """The prescriber who signs a refill the patient asks for: the prescription's, while they
    may sign for the clinic."""
    if (
        not PatientAccess.objects.live()
        .filter(user=actor, patient_id=prescription.patient_id)
        .exists()
    ):
        raise PermissionDenied("Only the patient may ask for their own refill.")
    clinic_id = prescription.patient.clinic_id
    if not clinic_prescribers(clinic_id).filter(pk=prescription.prescriber_id).exists():
        raise SignerRefused(
            "The prescriber of this prescription no longer signs for the clinic.", code="signer"
        )
    return prescription.prescriber


def _sent_by(via: str) -> dict[str, str]:
    """The event's parameter naming what sent an order, when not a person on the portal."""
    return {"via": via} if via else {}


def _existing_order(idempotency_key: uuid.UUID | None) -> Order | None:
    if idempotency_key is None:
        return None
    return Order.objects.filter(idempotency_key=idempotency_key).first()


def _order_lines(regimen: Regimen, catalogue: Catalogue) -> list[tuple[Formulation, Decimal]]:
    """One line per capsule strength, or the one liquid, drops or cream product. For capsules
    the prescriber's rounding of the total (within the 10 % the rules allow) goes onto the
    largest line."""
    if regimen.dosage_form != DosageForm.CAPSULE:
        product = catalogue.product(regimen.dosage_form, regimen.concentration_mg_per_ml)
        return [(product, regimen.quantity)]
    lines = [
        [catalogue.capsule(strength), Decimal(count)]
        for strength, count in dosing.capsule_lines(regimen)
    ]
    largest = max(lines, key=lambda line: line[1])
    largest[1] += regimen.quantity - sum(count for _, count in lines)
    return [(formulation, count) for formulation, count in lines]


def _checked_prescription(
    *, patient: Patient, prescriber, regimen: Regimen, diagnosis_codes: list[str],
    acknowledged: Iterable[str], reason: str, catalogue: Catalogue, amending: Order | None = None,
    drafting: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Run every rule; raise PrescriptionNotAccepted on an error or an unconfirmed warning (a
    draft keeps its warnings for the prescriber to confirm when signing). Returns the
    prescription's fields that follow from the regimen and the findings."""
    check = check_new_prescription(
        patient=patient,
        prescriber=prescriber,
        regimen=regimen,
        diagnosis_codes=diagnosis_codes,
        catalogue=catalogue,
        amending=amending,
    )
    if regimen.quantity is None or (drafting and check.errors):
        raise PrescriptionNotAccepted(check.findings, [])
    confirmed = [] if drafting else _accepted(check, acknowledged=acknowledged, reason=reason)
    return {
        "dosage_form": regimen.dosage_form,
        "concentration_mg_per_ml": regimen.concentration_mg_per_ml,
        "doses_per_day": regimen.doses_per_day,
        "time_of_day": regimen.time_of_day,
        "directions": dosing.directions(regimen),
        "days_supply": regimen.days_supply,
        "refills_authorized": regimen.refills,
        "diagnosis_codes": [icd10.normalize_code(code) for code in diagnosis_codes],
        "findings": [f.as_dict() for f in check.findings],
        "acknowledged_warnings": confirmed,
    }


def _write_schedule(
    prescription: Prescription, regimen: Regimen, catalogue: Catalogue, *, replace: bool
) -> None:
    """The prescription's steps and product lines, replacing any it had (`replace`: a new
    prescription has none to delete). A titration also gets the lines of a maintenance refill:
    the last step's dose for the whole days' supply."""
    if replace:
        prescription.steps.all().delete()
        prescription.lines.all().delete()
    steps = PrescriptionStep.objects.bulk_create(
        PrescriptionStep(
            prescription=prescription, position=i, dose_mg=step.dose_mg, days=step.days
        )
        for i, step in enumerate(regimen.steps)
    )
    _steps_known(prescription, steps)
    phases = [(FillSchedule.AS_WRITTEN, regimen)]
    if len(regimen.steps) > 1:
        phases.append((FillSchedule.MAINTENANCE, dosing.maintenance_regimen(regimen)))
    PrescriptionLine.objects.bulk_create(
        PrescriptionLine(
            prescription=prescription, phase=phase, position=i, formulation=f, quantity=q
        )
        for phase, fill in phases
        for i, (f, q) in enumerate(_order_lines(fill, catalogue))
    )


def _steps_known(prescription: Prescription, steps: list[PrescriptionStep]) -> None:
    """`prescription.steps.all()` answers with the steps just written, in their order, as if
    prefetched, instead of reading them back (the partner API's answer shows them)."""
    known = prescription.steps.all()
    known._result_cache, known._prefetch_done = steps, True
    prescription._prefetched_objects_cache = {
        **getattr(prescription, "_prefetched_objects_cache", {}),
        "steps": known,
    }


def order_submit(
    *,
    actor: User,
    patient: Patient,
    regimen: Regimen,
    diagnosis_codes: list[str],
    reason_for_compounding: str,
    ship_to: str,
    needed_by: datetime.date | None,
    acknowledged: Iterable[str],
    idempotency_key: uuid.UUID | None,
    catalogue: Catalogue | None = None,
    reason: str = "",
    signer: Prescriber | None = None,
    draft: bool = False,
    via: str = "",
) -> Order:
    """Write the prescription and its first order, after every rule passed on the server.

    A second submit with the same idempotency key (double click, back and resubmit) returns
    the order the first one made, whatever the rules say now, marked `resubmitted` (the page
    tells the prescriber). The same order sent from a new form is caught by the rules
    instead: an identical open order for the patient is a warning to confirm with a reason.
    The key is looked up only when the rules refuse or the order's unique key is taken (the
    first submit is by far the most common: it needs no lookup). `catalogue` is the one the
    form offered (loaded when not given).

    The clinic's staff draft instead, for `signer` (a prescriber of the clinic): the rules run
    for that prescriber and an error refuses the draft; its warnings wait for the prescriber,
    who confirms them when signing (order_sign). A draft never reaches the pharmacy. So do a
    clinic's systems unless their key signs (`draft`); `via` names what sent the order (an API
    key) on its first event."""
    prescriber, drafting = _ordering_for(actor, patient.clinic_id, signer, draft=draft)
    if catalogue is None:
        catalogue = Catalogue.load()
    try:
        fields = _checked_prescription(
            patient=patient, prescriber=prescriber, regimen=regimen,
            diagnosis_codes=diagnosis_codes, acknowledged=acknowledged, reason=reason,
            catalogue=catalogue, drafting=drafting,
        )  # fmt: skip
    except PrescriptionNotAccepted:
        existing = _existing_order(idempotency_key)
        if existing is None:
            raise
        existing.resubmitted = True
        return existing
    today = timezone.localdate()
    try:
        with transaction.atomic():
            prescription = Prescription(
                patient=patient, prescriber=prescriber, written_on=today,
                expires_on=prescription_expiry(today),
                reason_for_compounding=reason_for_compounding, **fields,
            )  # fmt: skip
            prescription._history_user = actor
            prescription.save()
            _write_schedule(prescription, regimen, catalogue, replace=False)
            return _order_create(
                prescription=prescription, kind=OrderKind.NEW, fill_number=0, ship_to=ship_to,
                needed_by=needed_by, actor=actor, idempotency_key=idempotency_key,
                note="Prescription written and submitted.", event=OrderEventKind.SUBMITTED,
                parameters={"directions": prescription.directions, **_sent_by(via)},
                draft_for=prescriber if drafting else None,
            )  # fmt: skip
    except IntegrityError:
        existing = _existing_order(idempotency_key)
        if existing is None:
            raise
        existing.resubmitted = True
        return existing  # the same form submitted again, or twice at the same moment


def order_amend(
    *,
    order: Order,
    actor: User,
    regimen: Regimen,
    diagnosis_codes: list[str],
    reason_for_compounding: str,
    acknowledged: Iterable[str],
    answer: str,
    reason: str = "",
) -> Order:
    """The prescriber's answer to a hold by changing the prescription: every rule runs again
    against the patient record as it is now, the prescription is rewritten (its history keeps
    the old version) and the order returns to review, all in one transaction."""
    prescription = order.prescription
    prescriber = _ensure_prescriber_of(actor, order.clinic_id)
    if order.kind != OrderKind.NEW:
        raise ValidationError("A refill cannot change the prescription; write a new one.")
    catalogue = Catalogue.load()
    fields = _checked_prescription(
        patient=Patient.objects.get(pk=prescription.patient_id), prescriber=prescriber,
        regimen=regimen, diagnosis_codes=diagnosis_codes, acknowledged=acknowledged,
        reason=reason, catalogue=catalogue, amending=order,
    )  # fmt: skip
    answer = (answer or "").strip() or "Prescription amended."
    with transaction.atomic():
        order = order_transition(
            order=order, to_status=OrderStatus.IN_REVIEW, actor=actor, satisfies=Needs.ANSWER,
            note=f"{answer} (prescription amended: {fields['directions']})",
            event_fields={
                "kind": OrderEventKind.AMENDED,
                "parameters": {
                    "answer": answer,
                    "directions_before": prescription.directions,
                    "directions": fields["directions"],
                },
            },
        )  # fmt: skip
        locked = Prescription.objects.select_for_update().get(pk=prescription.pk)
        for name, value in {**fields, "reason_for_compounding": reason_for_compounding}.items():
            setattr(locked, name, value)
        locked._history_user = actor
        locked.save()
        _write_schedule(locked, regimen, catalogue, replace=True)
    return order


def prescription_expiry(written_on: datetime.date) -> datetime.date:
    """A prescription may be filled until this date (most US states: 1 year after written;
    29 February moves to 28 February)."""
    return written_on + relativedelta(months=settings.PRESCRIPTION_VALID_MONTHS)


def _order_create(
    *,
    prescription,
    kind,
    fill_number,
    ship_to,
    needed_by,
    actor,
    idempotency_key,
    note,
    event: OrderEventKind,
    parameters: dict,
    draft_for: Prescriber | None = None,
    status: OrderStatus = OrderStatus.SUBMITTED,
    **fields,
) -> Order:
    """The order row and its first event: submitted (or `status`), or a draft awaiting
    `draft_for`'s signature (the event says who drafted it for whom)."""
    if draft_for is not None:
        status, event = OrderStatus.DRAFT, OrderEventKind.DRAFTED
        note = f"{note.removesuffix('.')}: drafted for {draft_for} to sign."
        parameters = {**parameters, "signer": str(draft_for)}
    order = Order(
        prescription=prescription, clinic_id=prescription.patient.clinic_id, kind=kind,
        fill_number=fill_number, ship_to=ship_to, needed_by=needed_by, created_by=actor,
        idempotency_key=idempotency_key, status=status, signer=draft_for,
        status_changed_at=timezone.now(), **fields,
    )  # fmt: skip
    order._history_user = actor
    order.save()
    OrderEvent.record(
        order, actor=actor, from_status="", to_status=status, note=note, kind=event,
        parameters=parameters,
    )  # fmt: skip
    return order


def prescription_refills_left(prescription: Prescription) -> int:
    used = prescription.orders.refills_used().count()
    return max(prescription.refills_authorized - used, 0)


def refill_schedule(prescription: Prescription, *, retitrate: bool) -> FillSchedule:
    """A refill continues at the maintenance dose unless the prescriber titrates again (after
    a break in treatment); a one-step prescription is its own maintenance."""
    if retitrate or not prescription.lines.filter(phase=FillSchedule.MAINTENANCE).exists():
        return FillSchedule.AS_WRITTEN
    return FillSchedule.MAINTENANCE


def prescription_refill(
    *,
    prescription: Prescription,
    actor: User,
    ship_to: str,
    needed_by: datetime.date | None,
    idempotency_key: uuid.UUID | None,
    retitrate: bool = False,
    acknowledged: Iterable[str] = (),
    reason: str = "",
    signer: Prescriber | None = None,
    draft: bool = False,
    via: str = "",
    by_patient: bool = False,
) -> Order:
    """Order the next fill of a prescription (the clinic's staff draft it for `signer`, whose
    signature confirms its warnings: see order_submit). Every rule runs again against the
    patient record and the orders as they are now (an error refuses the refill, RefillRefused;
    a warning new since the prescriber last confirmed it needs confirming, with a reason for an
    early refill); then the prescription must not have expired, must have refills left, must not
    have been rejected and must have no other refill open.

    `by_patient`: the patient asked for it on the portal (orders/patient_access.py checked
    that `actor` is this patient with a live access): always a draft, for the prescription's
    prescriber to sign."""
    if by_patient:
        prescriber, drafting = _patient_asking(actor, prescription), True
    else:
        clinic_id = prescription.patient.clinic_id
        prescriber, drafting = _ordering_for(actor, clinic_id, signer, draft=draft)
    existing = _existing_order(idempotency_key)
    if existing is not None:
        return existing
    with transaction.atomic():
        # Locked, so two refill requests at once cannot both take the last refill, or both be
        # the one open refill (the check below reads the fills after the lock).
        locked = Prescription.objects.select_for_update().get(pk=prescription.pk)
        fills = set(locked.orders.values_list("kind", "status"))
        if all(status == OrderStatus.CANCELLED for _, status in fills):
            message = "Every fill of this prescription was cancelled; submit a new order instead."
            raise RefillRefused(
                [_refusal("prescription.all_cancelled", "prescription", message)], []
            )
        if (OrderKind.NEW, OrderStatus.DRAFT) in fills:
            message = "The prescription is not signed yet; a refill can follow once it is."
            raise RefillRefused([_refusal("prescription.unsigned", "prescription", message)], [])
        schedule = refill_schedule(locked, retitrate=retitrate)
        check = check_fill(prescription=locked, schedule=schedule)
        if check.errors:
            raise RefillRefused(check.findings, [], check.earlier)
        confirmed = [] if drafting else _accepted(check, acknowledged=acknowledged, reason=reason)
        last_fill = locked.orders.order_by("-fill_number").values_list("fill_number", flat=True)
        note = "Refill requested."
        if schedule == FillSchedule.AS_WRITTEN and retitrate:
            note = "Refill requested: titrate again from the first step."
        return _order_create(
            prescription=locked, kind=OrderKind.REFILL, fill_number=last_fill[0] + 1,
            ship_to=ship_to, needed_by=needed_by, actor=actor, idempotency_key=idempotency_key,
            note=note, schedule=schedule, findings=[f.as_dict() for f in check.findings],
            acknowledged_warnings=confirmed, event=OrderEventKind.REFILL_REQUESTED,
            parameters={
                "fill_number": last_fill[0] + 1,
                "schedule": schedule.value,
                "retitrate": bool(retitrate),
                **_sent_by(via),
                **({"by_patient": True} if by_patient else {}),
            },
            draft_for=prescriber if drafting else None,
        )  # fmt: skip


def _refusal(code: str, field: str, message: str) -> Finding:
    return Finding(code, dosing.Severity.ERROR, field, message, dosing.SOURCE_PHARMACY)


def order_transition(
    *,
    order: Order,
    to_status: OrderStatus,
    actor: User,
    note: str = "",
    changes: dict | None = None,
    event_fields: dict | None = None,
    satisfies: Needs = Needs.NOTE,
) -> Order:
    """The only way an order's status changes: checked against the transition table, the
    actor's roles and what the move needs, saved with an event row in the same transaction.

    `satisfies` says what the caller has checked (a signature, a question, ...): a move that
    needs something else is refused, whatever the caller believed the status to be."""

    def may(who, locked, move) -> bool:
        if move.needs not in (satisfies, Needs.NOTE):
            raise ValidationError(
                f"{move.label} needs its own form ({move.needs.value.replace('_', ' ')}).",
                code="needs",
            )
        return may_move(who, locked, move)

    return apply_transition(
        instance=order,
        to_status=to_status,
        actor=actor,
        transitions=TRANSITIONS,
        may=may,
        event_model=OrderEvent,
        refused="An order that is {what} cannot become {to}.",
        note=note,
        changes=changes,
        event_fields=event_fields,
    )


def order_event_record(
    *,
    order: Order,
    kind: OrderEventKind,
    parameters: dict,
    actor: User | None = None,
    note: str = "",
) -> OrderEvent:
    """An event that leaves the order's status as it is (a label rendered, an email sent), for
    the timeline: the pharmacy's work calls down to record it."""
    if kind not in STATUS_KEPT_KINDS:
        raise ValueError(f"{kind} moves the status: order_transition records it.")
    status = Order.objects.values_list("status", flat=True).get(pk=order.pk)
    return OrderEvent.objects.create(
        order=order,
        kind=kind,
        actor=actor,
        from_status=status,
        to_status=status,
        parameters=parameters,
        note=note,
    )


# --- Orders that follow another of the same fill ------------------------------------------------


def _units_said(lines: list[PrescriptionLine], units: Mapping[int, Decimal]) -> str:
    """'30 capsules of Naltrexone HCl 4.5 mg capsule; ...' for the lines with units."""
    return "; ".join(
        f"{dosing.units_text(units[line.pk], line.formulation.unit)} of {line.formulation.name}"
        for line in lines
        if units.get(line.pk)
    )


def _order_follow(
    *, order: Order, kind: OrderKind, units: Mapping[int, Decimal], actor: User, note: str,
    event: OrderEventKind, parameters: dict,
) -> Order:  # fmt: skip
    """A new order of the same fill that follows `order` and dispenses `units` (line id ->
    units; a line not named is left to the other orders of the fill). It starts verified: the
    pharmacist's verification of the fill covers it, and every rule runs again when it is
    dispensed. The caller holds the lock on `order`."""
    follower = _order_create(
        prescription=order.prescription, kind=kind, fill_number=order.fill_number,
        ship_to=order.ship_to, needed_by=order.needed_by, actor=actor, idempotency_key=None,
        note=note, event=event, parameters=parameters, status=OrderStatus.VERIFIED,
        follows=order, schedule=order.schedule, findings=order.findings,
        acknowledged_warnings=order.acknowledged_warnings,
    )  # fmt: skip
    lines = PrescriptionLine.objects.of_order(order)
    OrderQuantity.objects.bulk_create(
        OrderQuantity(order=follower, line_id=line.pk, units=units.get(line.pk, Decimal(0)))
        for line in lines
    )
    return follower


def order_partial_fill(
    *, order: Order, filled: Mapping[int, Decimal], actor: User, reason: str
) -> Order:
    """Close `order` as a partial fill: it keeps the units `filled` (line id -> units
    dispensed to it), and the rest of each line becomes a new order of the same fill, returned,
    which the pharmacy dispenses when stock, or a batch whose BUD covers it, is there. Both
    orders' timelines, which the prescriber sees, say so. The caller (dispensing) holds the
    lock on `order` and has dispensed `filled`."""
    reason = required_text(reason, "reason for the partial fill")
    lines = list(PrescriptionLine.objects.of_order(order).select_related("formulation"))
    rest = {line.pk: line.units - filled.get(line.pk, Decimal(0)) for line in lines}
    if not any(filled.values()) or not any(rest.values()):
        raise ValidationError(
            f"A partial fill of order {order.number} dispenses part of it now and the rest "
            "later: some units now, and fewer than the whole.",
            code="not_partial",
        )
    for line in lines:
        OrderQuantity.objects.update_or_create(
            order=order, line_id=line.pk, defaults={"units": filled.get(line.pk, Decimal(0))}
        )
    said_rest = _units_said(lines, rest)
    follower = _order_follow(
        order=order, kind=OrderKind.REMAINDER, units=rest, actor=actor,
        note=f"The rest of partial fill {order.number} ({reason}): {said_rest}.",
        event=OrderEventKind.PARTIAL_FILL,
        parameters={"follows": order.number, "reason": reason, "units": said_rest},
    )  # fmt: skip
    order_event_record(
        order=order, kind=OrderEventKind.PARTIAL_FILL, actor=actor,
        note=f"Partly filled ({reason}): {_units_said(lines, filled)} now; the rest "
        f"({said_rest}) follows as order {follower.number}.",
        parameters={"rest": follower.number, "reason": reason, "units": said_rest},
    )  # fmt: skip
    return follower


def order_replace(*, order: Order, units: Mapping[int, Decimal], actor: User, why: str) -> Order:
    """A replacement of units the patient must not take (a recalled batch): a new order of the
    same fill that dispenses `units` again (line id -> units), verified, without using a
    refill. Both timelines say so; the caller holds the lock on `order`."""
    lines = list(PrescriptionLine.objects.of_order(order).select_related("formulation"))
    said = _units_said(lines, units)
    if not said:
        raise ValidationError(f"Order {order.number}: nothing to replace.", code="nothing")
    follower = _order_follow(
        order=order, kind=OrderKind.REPLACEMENT, units=units, actor=actor,
        note=f"Replaces {said} of order {order.number}: {why}", event=OrderEventKind.REPLACEMENT,
        parameters={"follows": order.number, "why": why, "units": said},
    )  # fmt: skip
    order_event_record(
        order=order, kind=OrderEventKind.REPLACEMENT, actor=actor,
        note=f"Replacement ordered as {follower.number} ({said}): {why}",
        parameters={"replacement": follower.number, "why": why, "units": said},
    )  # fmt: skip
    return follower


def order_cancel(*, order: Order, actor: User, reason: str = "") -> Order:
    return order_transition(
        order=order, to_status=OrderStatus.CANCELLED, actor=actor, note=reason or "Cancelled."
    )


def order_start_review(*, order: Order, actor: User) -> Order:
    return order_transition(order=order, to_status=OrderStatus.IN_REVIEW, actor=actor)


def order_fill_check(order: Order) -> FillCheck:
    """Every rule for this order's fill, against the patient, prescriber and orders as they
    are now: what the pharmacist sees before verifying, and what dispensing requires."""
    return check_fill(prescription=order.prescription, schedule=order.schedule, order=order)


def order_verify(
    *, order: Order, actor: User, password: str, acknowledged: Iterable[str] = (), reason: str = ""
) -> Order:
    """The pharmacist's electronic signature: their password again, their name, the time and
    the meaning are kept on the event. Every rule runs again first: an error refuses the
    verification (the message says why), and a warning new since the prescriber confirmed it
    must be confirmed by the pharmacist (kept on the event). The prescription gets its Rx
    number on the first fill."""
    if not actor.check_password(password or ""):
        raise ValidationError(
            "The password is not correct: the order was not verified.", code="bad_signature"
        )
    with transaction.atomic():
        locked = Order.objects.select_for_update().select_related("prescription").get(pk=order.pk)
        check = order_fill_check(locked)
        if check.errors:
            raise ValidationError(
                f"Order {locked.number} cannot be verified: {check.refusal()}", code="fill_refused"
            )
        unacknowledged = check.unacknowledged(ticked=acknowledged, reason=reason)
        if unacknowledged:
            raise ValidationError(
                "Confirm each new warning before verifying (with a reason for duplicate therapy "
                "or an early refill): " + " ".join(w.message for w in unacknowledged),
                code="unacknowledged",
            )
        order = order_transition(
            order=locked, to_status=OrderStatus.VERIFIED, actor=actor, satisfies=Needs.SIGNATURE,
            note=f"Verified by {actor.get_full_name() or actor.email}.",
            event_fields={
                "signed_by": f"{actor.get_full_name()} <{actor.email}>",
                "signature_meaning": SIGNATURE_MEANING,
                "parameters": {
                    "findings": [f.as_dict() for f in check.findings],
                    "acknowledged_warnings": check.acknowledgements(
                        ticked=acknowledged, reason=reason
                    ),
                },
            },
        )  # fmt: skip
        # Conditional update: the Rx number is given once, whoever verifies first.
        Prescription.objects.filter(pk=order.prescription_id, rx_number__isnull=True).update(
            rx_number=rx_number_for(order.prescription_id)
        )
    return order


def rx_number_for(prescription_id: int) -> str:
    return str(settings.RX_NUMBER_START + prescription_id)


def order_answer(*, order: Order, actor: User, answer: str) -> Order:
    """The prescriber's answer (or a pharmacist's note of a phone call) returns the order to
    review."""
    answer = required_text(answer, "answer")
    return order_transition(
        order=order, to_status=OrderStatus.IN_REVIEW, actor=actor, note=answer,
        satisfies=Needs.ANSWER,
        event_fields={"kind": OrderEventKind.ANSWERED, "parameters": {"answer": answer}},
    )  # fmt: skip


class SigningRefused(Exception):
    """Drafts that cannot be signed as they are, with the reason for each (by order id):
    nothing was signed."""

    def __init__(self, problems: dict[int, str], checks: Mapping[int, FillCheck] | None = None):
        super().__init__(" ".join(problems.values()))
        self.problems = problems
        self.checks = dict(checks or {})  # what the rules said of each draft checked


def _signing_problem(order: Order, check: FillCheck, prescriber, acknowledged, reason) -> str:
    """Why this prescriber cannot sign this draft now ("" when they can)."""
    if order.status != OrderStatus.DRAFT:
        status = OrderStatus(order.status).label.lower()
        return f"Order {order.number} is no longer awaiting a signature (it is {status})."
    if order.signer_id != prescriber.pk:
        return f"Order {order.number} is drafted for another prescriber to sign."
    if check.errors:
        return f"Order {order.number} cannot be signed: {check.refusal()}"
    unacknowledged = check.unacknowledged(ticked=acknowledged, reason=reason)
    if unacknowledged:
        return f"Order {order.number}: {unconfirmed_message(unacknowledged)}"
    return ""


def order_sign(
    *,
    orders: Sequence[Order],
    actor: User,
    password: str,
    acknowledged: Mapping[int, Iterable[str]] | None = None,
    reasons: Mapping[int, str] | None = None,
) -> list[Order]:
    """The prescriber's electronic signature of drafts their clinic's staff wrote for them, one
    or several at once: their password again, and their name, the time and the meaning kept on
    each order's signature event. Every rule runs again on each draft as the patient and the
    orders are now; an error, or a warning not confirmed (`acknowledged` and `reasons` by
    order id), refuses the signature of them all (SigningRefused says why for each), so one
    signature is never half applied. Signing submits each order to the pharmacy; a new
    prescription is written on the day it is signed."""
    acknowledged, reasons = acknowledged or {}, reasons or {}
    if not orders:
        raise ValidationError("Choose the orders to sign.", code="none_chosen")
    if any(prescriber_of_clinic(actor, order.clinic_id) is None for order in orders):
        raise PermissionDenied("Only a prescriber of the order's clinic signs its drafts.")
    if not actor.check_password(password or ""):
        raise ValidationError(
            "The password is not correct: nothing was signed.", code="bad_signature"
        )
    today = timezone.localdate()
    with transaction.atomic():
        # Locked in id order, as every signature locks them: two signatures of overlapping
        # drafts cannot deadlock, and the second finds them signed.
        locked = list(
            Order.objects.select_for_update()
            .filter(pk__in=[order.pk for order in orders])
            .order_by("pk")
        )
        checked, problems = [], {}
        for order in locked:
            check = order_fill_check(order)
            problem = _signing_problem(
                order, check, prescriber_of_clinic(actor, order.clinic_id),
                acknowledged.get(order.pk, ()), reasons.get(order.pk, ""),
            )  # fmt: skip
            if problem:
                problems[order.pk] = problem
            checked.append((order, check))
        if problems:
            raise SigningRefused(problems, {order.pk: check for order, check in checked})
        signed = []
        for order, check in checked:
            confirmed = check.acknowledgements(
                ticked=acknowledged.get(order.pk, ()), reason=reasons.get(order.pk, "")
            )
            signed.append(_sign(order, check, confirmed, actor=actor, today=today))
        return signed


def _sign(order: Order, check: FillCheck, confirmed: list[dict], *, actor, today) -> Order:
    """Sign one checked draft: a new prescription is written today with the warnings the
    prescriber confirmed (as order_submit keeps them); a refill keeps them on the order (as
    prescription_refill does)."""
    findings = [f.as_dict() for f in check.findings]
    changes = {"findings": findings, "acknowledged_warnings": confirmed}
    if order.kind == OrderKind.NEW:
        prescription = Prescription.objects.select_for_update().get(pk=order.prescription_id)
        prescription.written_on, prescription.expires_on = today, prescription_expiry(today)
        prescription.findings, prescription.acknowledged_warnings = findings, confirmed
        prescription._history_user = actor
        prescription.save(
            update_fields=["written_on", "expires_on", "findings", "acknowledged_warnings"]
        )
        changes = {"findings": findings}
    signer = f"{actor.get_full_name()} <{actor.email}>"
    return order_transition(
        order=order, to_status=OrderStatus.SUBMITTED, actor=actor,
        satisfies=Needs.PRESCRIBER_SIGNATURE,
        note=f"Signed by {actor.get_full_name() or actor.email}.", changes=changes,
        event_fields={
            "kind": OrderEventKind.SIGNED,
            "signed_by": signer,
            "signature_meaning": PRESCRIBER_SIGNATURE_MEANING,
            "parameters": {
                "signer": str(order.signer), "findings": findings,
                "acknowledged_warnings": confirmed,
            },
        },
    )  # fmt: skip
