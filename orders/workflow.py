"""The order's state machine: the one table of allowed moves, who may make each, and what each
needs from the person making it. order_transition (services.py) is the only code that changes
an order's status."""

from dataclasses import dataclass
from enum import StrEnum

from core.roles import STAFF, Role, staff_roles
from prescribers.selectors import is_staff_of_clinic, prescriber_of_clinic

from .models import Order
from .models import OrderStatus as S


class Needs(StrEnum):
    NOTE = "note"  # an optional note
    SIGNATURE = "signature"  # the pharmacist re-enters their password
    PRESCRIBER_SIGNATURE = "prescriber_signature"  # the prescriber signs a draft (password)
    QUESTION = "question"  # for the prescriber
    REASON = "reason"  # why it was rejected
    ANSWER = "answer"  # the prescriber's answer
    SHIPPING = "shipping"  # carrier and tracking number
    FINAL_CHECK = "final_check"  # every line dispensed
    # Made by the recall that pulled the order's recalled units back (pharmacy/recalls.py):
    # never a button of its own.
    RECALL = "recall"


@dataclass(frozen=True)
class Move:
    label: str
    roles: frozenset[Role]
    needs: Needs = Needs.NOTE


# The prescriber role here: an approved prescriber of the order's clinic; clinic staff: an
# active member of its staff (roles_of).
PRESCRIBER, PHARMACIST, CLINIC_STAFF = Role.PRESCRIBER, Role.PHARMACIST, Role.CLINIC_STAFF

# Only the prescriber a draft names signs it (order_sign checks who); the pharmacy never moves
# a draft. Only a pharmacist reviews, verifies, holds, rejects and does the final check (ready).
TRANSITIONS: dict[tuple[S, S], Move] = {
    (S.DRAFT, S.SUBMITTED): Move("Sign", frozenset({PRESCRIBER}), Needs.PRESCRIBER_SIGNATURE),
    (S.DRAFT, S.CANCELLED): Move("Discard the draft", frozenset({PRESCRIBER, CLINIC_STAFF})),
    (S.SUBMITTED, S.IN_REVIEW): Move("Start review", frozenset({PHARMACIST})),
    (S.IN_REVIEW, S.VERIFIED): Move("Verify", frozenset({PHARMACIST}), Needs.SIGNATURE),
    (S.IN_REVIEW, S.ON_HOLD): Move("Put on hold", frozenset({PHARMACIST}), Needs.QUESTION),
    # Before dispensing starts, a pharmacist may still hold a verified order: the records
    # changed (the rules refuse dispensing now) and the prescriber must answer.
    (S.VERIFIED, S.ON_HOLD): Move("Put on hold", frozenset({PHARMACIST}), Needs.QUESTION),
    (S.IN_REVIEW, S.REJECTED): Move("Reject", frozenset({PHARMACIST}), Needs.REASON),
    (S.ON_HOLD, S.IN_REVIEW): Move("Answer", frozenset({PRESCRIBER, PHARMACIST}), Needs.ANSWER),
    (S.VERIFIED, S.COMPOUNDING): Move("Start compounding", STAFF),
    (S.COMPOUNDING, S.READY): Move(
        "Final check: ready", frozenset({PHARMACIST}), Needs.FINAL_CHECK
    ),
    # A recall pulls the units of a recalled batch back from a checked order that has not
    # shipped: the order is dispensed again from another batch and checked again. Only the
    # pharmacist's recall makes this move (Needs.RECALL).
    (S.READY, S.COMPOUNDING): Move(
        "Back to dispensing (recalled units pulled back)", frozenset({PHARMACIST}), Needs.RECALL
    ),
    (S.READY, S.SHIPPED): Move("Ship", STAFF, Needs.SHIPPING),
    (S.SHIPPED, S.DELIVERED): Move("Mark delivered", STAFF),
    (S.SUBMITTED, S.CANCELLED): Move("Cancel", frozenset({PRESCRIBER, PHARMACIST})),
    (S.IN_REVIEW, S.CANCELLED): Move("Cancel", frozenset({PRESCRIBER, PHARMACIST})),
    (S.ON_HOLD, S.CANCELLED): Move("Cancel", frozenset({PRESCRIBER, PHARMACIST})),
}
SIGNATURE_MEANING = "verified prescription"
# What a prescriber's signature of a draft means.
PRESCRIBER_SIGNATURE_MEANING = "prescribed: signed and submitted to the pharmacy"


def roles_of(actor, order: Order) -> set[Role]:
    roles = set(staff_roles(actor))
    if prescriber_of_clinic(actor, order.clinic_id) is not None:
        roles.add(Role.PRESCRIBER)
    if is_staff_of_clinic(actor, order.clinic_id):
        roles.add(Role.CLINIC_STAFF)
    return roles


def may_move(actor, order: Order, move: Move) -> bool:
    return bool(roles_of(actor, order) & move.roles)


# Moves that a service makes as a part of its work, never offered as a button.
SERVICE_MOVES = frozenset({Needs.RECALL})


def allowed_moves(actor, order: Order) -> list[tuple[S, Move]]:
    """The moves this actor may make on the order now (buttons on pages), in table order."""
    roles = roles_of(actor, order)
    return [
        (to, move)
        for (frm, to), move in TRANSITIONS.items()
        if frm == order.status and roles & move.roles and move.needs not in SERVICE_MOVES
    ]
