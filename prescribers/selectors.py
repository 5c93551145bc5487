"""Reads about clinics and the people in them, for the apps above (orders, pharmacy)."""

import datetime

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from core.compiled_reads import CompiledRead

from .models import (
    Licence,
    Membership,
    MembershipRole,
    MembershipStatus,
    Prescriber,
    PrescriberStatus,
)

# A person's active memberships, kept on the user object of the request (or of a service's
# actor) once read: the portal's pages and the order's moves ask several times.
_PORTAL_MEMBERSHIPS = "_portal_memberships"
# Read on every portal page and every order and dose check: compiled once (CompiledRead).
_ACTIVE_MEMBERSHIPS = CompiledRead(Membership.objects.active().select_related("clinic"), "user_id")
_LICENCES = CompiledRead(Licence.objects.all(), "prescriber_id", "state")


def portal_memberships(user) -> list[Membership]:
    """The clinics a person works for in the portal, by clinic name (one query per user
    object): their active memberships, a prescriber's only while the pharmacy approves them.
    The pharmacy's staff work in the admin and belong to no clinic here."""
    if not user.is_authenticated or user.is_staff:
        return []
    cached = user.__dict__.get(_PORTAL_MEMBERSHIPS)
    if cached is None:
        prescriber = user.portal_prescriber
        approved = prescriber is not None and prescriber.is_approved
        cached = [
            m
            for m in _ACTIVE_MEMBERSHIPS(user_id=[user.pk])
            if m.role == MembershipRole.STAFF or approved
        ]
        user.__dict__[_PORTAL_MEMBERSHIPS] = cached
    return cached


def pending_memberships(user) -> list[Membership]:
    """The clinics a person asked to join and that have not answered yet."""
    if not user.is_authenticated or user.is_staff:
        return []
    pending = Membership.objects.filter(user_id=user.pk, status=MembershipStatus.PENDING)
    return list(pending.select_related("clinic"))


def prescriber_memberships(user) -> list[Membership]:
    """The clinics a person orders and signs for: their prescriber memberships above."""
    return [m for m in portal_memberships(user) if m.role == MembershipRole.PRESCRIBER]


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
    if not any(m.clinic_id == clinic_id for m in prescriber_memberships(user)):
        return None
    return user.portal_prescriber


def is_staff_of_clinic(user, clinic_id: int) -> bool:
    """Whether the person is an active member of the clinic's staff (drafts, never signs)."""
    return any(
        m.clinic_id == clinic_id and m.role == MembershipRole.STAFF
        for m in portal_memberships(user)
    )


def clinic_prescribers(clinic_id: int) -> QuerySet[Prescriber]:
    """The prescribers who may sign for the clinic now: approved, with an active prescriber
    membership there, by name."""
    return Prescriber.objects.filter(
        status=PrescriberStatus.APPROVED,
        user__memberships__clinic_id=clinic_id,
        user__memberships__role=MembershipRole.PRESCRIBER,
        user__memberships__status=MembershipStatus.ACTIVE,
    ).order_by("last_name", "first_name", "pk")


def clinic_members(clinic_id: int) -> QuerySet[Membership]:
    """Everyone who belongs or asked to belong to the clinic, by role and name."""
    return (
        Membership.objects.filter(clinic_id=clinic_id)
        .select_related("user")
        .order_by("role", "user__last_name", "user__first_name", "pk")
    )


def expiry_horizon() -> datetime.date:
    """A licence expiring on or before this day is flagged (LICENCE_EXPIRY_NOTICE_DAYS)."""
    return timezone.localdate() + datetime.timedelta(days=settings.LICENCE_EXPIRY_NOTICE_DAYS)


def licences_to_renew(*, prescriber_ids=None) -> QuerySet[Licence]:
    """Licences that expired, or expire within LICENCE_EXPIRY_NOTICE_DAYS, soonest first
    (of these prescribers, or of every prescriber): what the dashboard and the admin flag."""
    licences = Licence.objects.filter(expires_on__lte=expiry_horizon()).select_related("prescriber")
    if prescriber_ids is not None:
        licences = licences.filter(prescriber_id__in=prescriber_ids)
    return licences.order_by("expires_on", "state", "pk")


def licence_in(prescriber: Prescriber, state: str) -> Licence | None:
    """The prescriber's licence in that state (two letters), or None (one at most:
    one_licence_per_state)."""
    return next(iter(_LICENCES(prescriber_id=[prescriber.pk], state=[state])), None)
