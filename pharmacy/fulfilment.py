"""The pharmacy's moves of an order that tell someone: a hold with a question and a rejection
(the prescriber is emailed), the final check (the clinic gets the label) and shipping (the clinic
is told). Each move and its email are one transaction: the email is an outbox row, sent after
commit. order_move is the one entry for the admin's move buttons."""

from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db import transaction

from core.models import User
from core.text import required_text
from orders.models import Order, OrderEvent, OrderEventKind, OrderStatus
from orders.services import (
    order_answer,
    order_cancel,
    order_sign,
    order_transition,
    order_verify,
)
from orders.workflow import TRANSITIONS, Needs

from .dispensing import scan_text
from .labels import LabelRefused, bottle_pages, label_pages
from .models import DeliveryKind
from .notifications import delivery_enqueue
from .selectors import order_fully_dispensed

# Who each email about an order goes to: the prescriber answers questions and learns of a
# rejection; the clinic's label address receives labels and shipping news.
TO_PRESCRIBER = frozenset({DeliveryKind.ON_HOLD, DeliveryKind.REJECTED})


def _transition_and_mail(
    *, order: Order, mail: DeliveryKind, occasion: str = "", **transition
) -> Order:
    """A move and the email it causes, in one transaction (the email is sent after commit)."""
    with transaction.atomic():
        order = order_transition(order=order, **transition)
        if mail in TO_PRESCRIBER:
            recipient = order.prescription.prescriber.user.email
        else:
            recipient = order.clinic.label_email
        delivery_enqueue(kind=mail, order=order, recipient=recipient, occasion=occasion)
    return order


def order_hold(*, order: Order, actor: User, question: str) -> Order:
    """Put the order on hold with a question that the prescriber sees and answers."""
    question = required_text(question, "question for the prescriber")
    return _transition_and_mail(
        order=order, to_status=OrderStatus.ON_HOLD, actor=actor, note=question,
        satisfies=Needs.QUESTION, mail=DeliveryKind.ON_HOLD,
        event_fields={"kind": OrderEventKind.HELD, "parameters": {"question": question}},
    )  # fmt: skip


def order_reject(*, order: Order, actor: User, reason: str) -> Order:
    reason = required_text(reason, "reason for rejecting the order")
    return _transition_and_mail(
        order=order, to_status=OrderStatus.REJECTED, actor=actor, note=reason,
        satisfies=Needs.REASON, mail=DeliveryKind.REJECTED,
    )  # fmt: skip


def order_ship(*, order: Order, actor: User, carrier: str, tracking_number: str) -> Order:
    carrier = required_text(carrier, "carrier")
    tracking_number = required_text(tracking_number, "tracking number")
    return _transition_and_mail(
        order=order, to_status=OrderStatus.SHIPPED, actor=actor,
        note=f"Shipped with {carrier}, tracking {tracking_number}.", satisfies=Needs.SHIPPING,
        changes={"carrier": carrier, "tracking_number": tracking_number},
        mail=DeliveryKind.SHIPPED,
        event_fields={
            "kind": OrderEventKind.SHIPPED,
            "parameters": {"carrier": carrier, "tracking_number": tracking_number},
        },
    )  # fmt: skip


def order_move(*, order: Order, to_status: OrderStatus, actor: User, inputs: dict) -> Order:
    """One entry for the admin's move buttons: each move with what it needs (workflow.Needs),
    chosen by the order's status as stored now (not as a possibly stale object says)."""
    current = Order.objects.values_list("status", flat=True).get(pk=order.pk)
    move = TRANSITIONS.get((OrderStatus(current), to_status))
    needs = move.needs if move is not None else Needs.NOTE
    if needs == Needs.SIGNATURE:
        return order_verify(
            order=order,
            actor=actor,
            password=inputs.get("password", ""),
            acknowledged=inputs.get("acknowledge", ()),
            reason=inputs.get("reason", ""),
        )
    if needs == Needs.PRESCRIBER_SIGNATURE:
        return order_sign(
            orders=[order],
            actor=actor,
            password=inputs.get("password", ""),
            acknowledged={order.pk: inputs.get("acknowledge", ())},
            reasons={order.pk: inputs.get("reason", "")},
        )[0]
    if needs == Needs.QUESTION:
        return order_hold(order=order, actor=actor, question=inputs.get("text", ""))
    if needs == Needs.REASON:
        return order_reject(order=order, actor=actor, reason=inputs.get("text", ""))
    if needs == Needs.ANSWER:
        return order_answer(order=order, actor=actor, answer=inputs.get("text", ""))
    if needs == Needs.SHIPPING:
        return order_ship(
            order=order, actor=actor, carrier=inputs.get("carrier", ""),
            tracking_number=inputs.get("tracking_number", ""),
        )  # fmt: skip
    if to_status == OrderStatus.CANCELLED:
        return order_cancel(order=order, actor=actor, reason=inputs.get("text", ""))
    if needs == Needs.FINAL_CHECK:
        return order_final_check(
            order=order, actor=actor, note=inputs.get("text", ""),
            scans=inputs.get("labels", "").splitlines(),
        )  # fmt: skip
    return order_transition(
        order=order, to_status=to_status, actor=actor, note=inputs.get("text", "")
    )


def order_final_check(*, order: Order, actor: User, scans: Sequence[str], note: str = "") -> Order:
    """The pharmacist's final check: every line dispensed, and the barcode of each bottle's
    printed label scanned (`scans`, what the scanner read, in any order): a label of another
    order, fill or lot, or a bottle whose label was not scanned, refuses it with what was
    expected. The scans are kept on the check's event."""
    if not order_fully_dispensed(order):
        raise ValidationError(
            f"Order {order.number} is not fully dispensed yet: dispense every line first.",
            code="not_dispensed",
        )
    scanned = label_scans_check(order, scans)
    # Checked before (a recall pulled units back since): the clinic gets the new label too.
    checked = OrderEvent.objects.filter(
        order=order, from_status=OrderStatus.COMPOUNDING, to_status=OrderStatus.READY
    ).count()
    return _transition_and_mail(
        order=order, to_status=OrderStatus.READY, actor=actor,
        note=note or "Final check done.", satisfies=Needs.FINAL_CHECK,
        mail=DeliveryKind.LABEL_READY, occasion=f"check-{checked + 1}" if checked else "",
        event_fields={"parameters": {"scanned_labels": scanned}},
    )  # fmt: skip


def label_scans_check(order: Order, scans: Sequence[str]) -> list[str]:
    """The scanned label barcodes, checked against the order's labels (labels.label_pages):
    each bottle's once, and nothing else; ValidationError lists every problem."""
    try:
        pages = bottle_pages(label_pages(order))
    except LabelRefused as refused:
        raise ValidationError(str(refused), code="label_refused") from refused
    read = [code for scan in scans if (code := scan_text(scan))]
    expected = {page.barcode_payload: page for page in pages}
    problems = [
        f"The label scanned as “{code}” is not a label of this order: "
        f"{_said(code)}. Put it aside and scan this order's labels."
        for code in read
        if code not in expected
    ]
    problems += [
        f"Scan the label of the bottle of {page.drug} (lot {', '.join(page.lot_numbers)})."
        for code, page in expected.items()
        if code not in read
    ]
    if problems:
        raise ValidationError([ValidationError(problem, code="label_scan") for problem in problems])
    return list(expected)


def _said(code: str) -> str:
    """What a label's barcode (Rx number|fill number|lot) names, in words."""
    parts = code.split("|")
    if len(parts) != 3:
        return "it is not a prescription label of this pharmacy"
    rx, fill, lot = parts
    return f"it is Rx {rx}, fill {fill}, lot {lot}"
