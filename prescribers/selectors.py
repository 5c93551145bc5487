"""Reads about clinics and the people in them, for the apps above (orders, pharmacy)."""

from .models import Licence, Membership, MembershipRole, Prescriber

# A person's active prescriber memberships, kept on the user object of the request (or of a
# service's actor) once read: the portal's pages and the order's moves ask it several times.
_PRESCRIBER_MEMBERSHIPS = "_prescriber_memberships"


def prescriber_memberships(user) -> list[Membership]:
    """The clinics a person orders for: their active prescriber memberships with the clinic,
    by clinic name (one query per user object)."""
    cached = user.__dict__.get(_PRESCRIBER_MEMBERSHIPS)
    if cached is None:
        cached = list(
            Membership.objects.active()
            .filter(user_id=user.pk, role=MembershipRole.PRESCRIBER)
            .select_related("clinic")
        )
        user.__dict__[_PRESCRIBER_MEMBERSHIPS] = cached
    return cached


def acting_membership(memberships: list[Membership], chosen_clinic_id) -> Membership | None:
    """The membership a person acts for: the clinic they chose in this session if it is still
    theirs, else the one they chose last, else the first by name; None without any."""
    for membership in memberships:
        if membership.clinic_id == chosen_clinic_id:
            return membership
    chosen = [m for m in memberships if m.last_acted_at is not None]
    if chosen:
        return max(chosen, key=lambda m: m.last_acted_at)
    return memberships[0] if memberships else None


def prescriber_of_clinic(user, clinic_id: int) -> Prescriber | None:
    """The person's prescriber profile if they are an approved prescriber of that clinic."""
    prescriber = user.portal_prescriber
    if prescriber is None or not prescriber.is_approved:
        return None
    if not any(m.clinic_id == clinic_id for m in prescriber_memberships(user)):
        return None
    return prescriber


def licence_in(prescriber: Prescriber, state: str) -> Licence | None:
    """The prescriber's licence in that state (two letters), or None."""
    return Licence.objects.filter(prescriber_id=prescriber.pk, state=state).first()
