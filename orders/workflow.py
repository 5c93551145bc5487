"""The order's state machine: the one table of allowed moves and who may make each.

The pharmacy's own steps (review, verification, compounding, shipping) join this table in their
own slice; order_transition in services.py is the only code that changes an order's status.
"""

from enum import StrEnum

from .models import Order
from .models import OrderStatus as S


class Role(StrEnum):
    PRESCRIBER = "prescriber"  # an approved prescriber of the order's clinic
    PHARMACIST = "pharmacist"
    TECHNICIAN = "technician"


TRANSITIONS: dict[tuple[S, S], frozenset[Role]] = {
    (S.SUBMITTED, S.CANCELLED): frozenset({Role.PRESCRIBER, Role.PHARMACIST}),
}


def roles_of(actor, order: Order) -> set[Role]:
    roles = set()
    prescriber = actor.portal_prescriber
    of_this_clinic = prescriber is not None and prescriber.clinic_id == order.clinic_id
    if of_this_clinic and prescriber.is_approved:
        roles.add(Role.PRESCRIBER)
    if actor.is_active and actor.is_staff:
        groups = {group.name for group in actor.groups.all()}
        if "Pharmacist" in groups or actor.is_superuser:
            roles.add(Role.PHARMACIST)
        if "Technician" in groups:
            roles.add(Role.TECHNICIAN)
    return roles


def allowed_moves(actor, order: Order) -> list[S]:
    """The statuses this actor may move the order to now (for buttons on pages)."""
    roles = roles_of(actor, order)
    return [to for (frm, to), who in TRANSITIONS.items() if frm == order.status and roles & who]
