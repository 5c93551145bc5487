"""Who may make a move: the one vocabulary of roles for every state machine (orders, batches,
ingredient lots, prescribers). Each transition table names the roles that may take each move;
staff roles come from the two groups made by migration 0002, Pharmacist and Technician. A
superuser counts as a pharmacist. The prescriber role depends on the record (an approved
prescriber of the order's clinic), and so does the clinic staff role (a member of the order's
clinic who drafts): orders/workflow.py adds them."""

from enum import StrEnum

from .auth import group_names

PHARMACIST_GROUP = "Pharmacist"
TECHNICIAN_GROUP = "Technician"


class Role(StrEnum):
    PRESCRIBER = "prescriber"
    # A nurse or assistant of the record's clinic: drafts for a prescriber to sign.
    CLINIC_STAFF = "clinic_staff"
    PHARMACIST = "pharmacist"
    TECHNICIAN = "technician"


PHARMACIST = frozenset({Role.PHARMACIST})
STAFF = frozenset({Role.PHARMACIST, Role.TECHNICIAN})


def _groups(user) -> frozenset[str]:
    if not (user.is_active and user.is_staff):
        return frozenset()
    return group_names(user)


def is_pharmacist(user) -> bool:
    return bool(user.is_active and user.is_staff and user.is_superuser) or (
        PHARMACIST_GROUP in _groups(user)
    )


def is_technician(user) -> bool:
    return TECHNICIAN_GROUP in _groups(user)


def staff_roles(user) -> frozenset[Role]:
    """The staff roles the user holds now."""
    held = set()
    if is_pharmacist(user):
        held.add(Role.PHARMACIST)
    if is_technician(user):
        held.add(Role.TECHNICIAN)
    return frozenset(held)


def has_staff_role(user, roles) -> bool:
    """Whether the user holds one of the roles of a move (or of a set like STAFF). A superuser
    is a pharmacist without a look at their groups."""
    return (Role.PHARMACIST in roles and is_pharmacist(user)) or (
        Role.TECHNICIAN in roles and is_technician(user)
    )


def may_by_role(actor, _subject, roles) -> bool:
    """The `may` of core.state_machine.apply_transition for tables of staff roles."""
    return has_staff_role(actor, roles)
