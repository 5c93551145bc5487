"""Staff roles come from the two groups made by migration 0002: Pharmacist and Technician.
A superuser counts as a pharmacist."""

from .auth import group_names

PHARMACIST_GROUP = "Pharmacist"
TECHNICIAN_GROUP = "Technician"


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


def has_staff_role(user, roles) -> bool:
    """Whether the user holds one of the roles ("pharmacist", "technician") of a move."""
    return ("pharmacist" in roles and is_pharmacist(user)) or (
        "technician" in roles and is_technician(user)
    )
