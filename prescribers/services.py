"""Writes about prescribers and clinics: applying, and the decisions of pharmacy staff."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.models import User, normalize_email_address
from core.roles import PHARMACIST, Role, is_pharmacist, may_by_role
from core.state_machine import apply_transition

from .emails import (
    send_already_registered_email,
    send_decision_email,
    send_licence_expiry_email,
    send_staff_invitation_email,
)
from .models import (
    Clinic,
    Licence,
    Membership,
    MembershipRole,
    MembershipStatus,
    Prescriber,
    PrescriberEvent,
)
from .models import PrescriberStatus as Status
from .selectors import licences_to_renew, prescriber_of_clinic

# The one table of allowed status changes, with the roles that may make each: the pharmacy's
# decisions are a pharmacist's.
TRANSITIONS: dict[tuple[Status, Status], frozenset[Role]] = {
    (Status.PENDING, Status.APPROVED): PHARMACIST,
    (Status.PENDING, Status.DECLINED): PHARMACIST,
    (Status.APPROVED, Status.SUSPENDED): PHARMACIST,
    (Status.SUSPENDED, Status.APPROVED): PHARMACIST,
}

DUPLICATE_NPI = "A prescriber with this NPI has already applied or has an account."


def email_in_use(email: str) -> bool:
    return User.objects.filter(email=normalize_email_address(email)).exists()


def npi_in_use(npi: str) -> bool:
    return Prescriber.objects.filter(npi=npi).exists()


def existing_clinic(clinic: Clinic) -> Clinic | None:
    """The clinic on record that an application names: the same name (any case or spacing),
    postal code and phone."""
    name = " ".join(clinic.name.split())
    return (
        Clinic.objects.filter(name__iexact=name, postal_code=clinic.postal_code, phone=clinic.phone)
        .order_by("pk")
        .first()
    )


def prescriber_apply(
    *, prescriber: Prescriber, licence: Licence, clinic: Clinic, email: str
) -> Prescriber | None:
    """Record an application: a clinic, a prescriber awaiting approval with their state
    licence, and a login that has no password yet (it is set from the link sent on
    approval).

    An address that already has an account gets an email saying so, and nothing is written:
    the page answers as for any application, so it tells no one which addresses have accounts
    (returns None)."""
    if npi_in_use(prescriber.npi):
        raise ValidationError({"npi": ValidationError(DUPLICATE_NPI, code="duplicate_npi")})
    if email_in_use(email):
        send_already_registered_email(email=normalize_email_address(email))
        return None
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                email, first_name=prescriber.first_name, last_name=prescriber.last_name
            )
            # The clinic already on record (same name, postal code and phone): the applicant
            # asks to join it, and its prescribers accept them; else it is a new clinic.
            existing = existing_clinic(clinic)
            if existing is None:
                clinic.save()
            prescriber.user = user
            prescriber.status = Status.PENDING
            prescriber.save()
            licence.prescriber = prescriber
            licence.save()
            # A clinic they registered is theirs; the pharmacy's approval of the person opens
            # the portal. An existing clinic's prescribers accept them first.
            Membership.objects.create(
                user=user, clinic=existing or clinic, role=MembershipRole.PRESCRIBER,
                status=MembershipStatus.ACTIVE if existing is None else MembershipStatus.PENDING,
            )  # fmt: skip
            PrescriberEvent.objects.create(
                prescriber=prescriber,
                actor=None,
                from_status="",
                to_status=Status.PENDING,
                note="Applied for an account.",
            )
    except IntegrityError as exc:
        # Two applications with the same email or NPI at the same moment: the database's
        # unique constraints decide, and the loser is answered as above.
        if npi_in_use(prescriber.npi):
            error = ValidationError(DUPLICATE_NPI, code="duplicate_npi")
            raise ValidationError({"npi": error}) from exc
        send_already_registered_email(email=normalize_email_address(email))
        return None
    return prescriber


def _prescriber_transition(
    *, prescriber: Prescriber, to_status: Status, actor: User, note: str = ""
) -> Prescriber:
    with transaction.atomic():
        apply_transition(
            instance=prescriber,
            to_status=to_status,
            actor=actor,
            transitions=TRANSITIONS,
            may=may_by_role,
            event_model=PrescriberEvent,
            refused="A prescriber who is {what} cannot be moved to {to}.",
            note=note,
        )
        # The email is an outbox row of this transaction (settings.EMAIL_BACKEND): a broker
        # outage delays the activation link, never loses it.
        send_decision_email(prescriber=prescriber, status=to_status)
    prescriber.refresh_from_db()
    return prescriber


def prescriber_approve(*, prescriber: Prescriber, actor: User) -> Prescriber:
    """Approve an application; the prescriber is emailed a one-time link to set a password."""
    return _prescriber_transition(prescriber=prescriber, to_status=Status.APPROVED, actor=actor)


def prescriber_decline(*, prescriber: Prescriber, actor: User, reason: str) -> Prescriber:
    return _prescriber_transition(
        prescriber=prescriber, to_status=Status.DECLINED, actor=actor, note=reason
    )


def prescriber_suspend(*, prescriber: Prescriber, actor: User, reason: str) -> Prescriber:
    """Suspend an approved prescriber: their open sessions end at their next request."""
    return _prescriber_transition(
        prescriber=prescriber, to_status=Status.SUSPENDED, actor=actor, note=reason
    )


def prescriber_reinstate(*, prescriber: Prescriber, actor: User, reason: str = "") -> Prescriber:
    return _prescriber_transition(
        prescriber=prescriber, to_status=Status.APPROVED, actor=actor, note=reason
    )


def membership_act_for(*, membership: Membership, actor: User) -> Membership:
    """The person acts for this clinic from now on (and from their next sign-in)."""
    if membership.user_id != actor.pk or membership.status != MembershipStatus.ACTIVE:
        raise PermissionDenied("You are not an active member of this clinic.")
    membership.last_acted_at = timezone.now()
    Membership.objects.filter(pk=membership.pk).update(last_acted_at=membership.last_acted_at)
    return membership


def _ensure_signs_for(actor: User, clinic_id: int) -> None:
    if prescriber_of_clinic(actor, clinic_id) is None:
        raise PermissionDenied("Only a prescriber of the clinic manages its staff.")


def membership_invite_staff(
    *, clinic: Clinic, email: str, first_name: str, last_name: str, actor: User
) -> Membership:
    """A prescriber of the clinic adds a nurse or assistant as clinic staff: an account
    without a password (for a new address), an active staff membership, and an email with a
    one-time link to set the password. Inviting again someone who never set a password sends
    a new link; someone who left is taken back as staff."""
    _ensure_signs_for(actor, clinic.pk)
    email = normalize_email_address(email)
    with transaction.atomic():
        user = User.objects.select_for_update().filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email, first_name=first_name, last_name=last_name)
        elif user.is_staff:
            raise ValidationError(
                {"email": "This address is a pharmacy account; use the person's own address."}
            )
        membership = Membership.objects.select_for_update().filter(user=user, clinic=clinic).first()
        if membership is None:
            membership = Membership(user=user, clinic=clinic)
        elif membership.status == MembershipStatus.ACTIVE and user.has_usable_password():
            raise ValidationError({"email": f"{user} already works for {clinic}."})
        if membership.status != MembershipStatus.ACTIVE:
            membership.role, membership.status = MembershipRole.STAFF, MembershipStatus.ACTIVE
            membership._history_user = actor
            membership.save()
        send_staff_invitation_email(membership=membership, inviter=actor)
    return membership


def membership_end(*, membership: Membership, actor: User) -> Membership:
    """A prescriber of the clinic ends a staff member's place in it (from their next request
    they no longer see the clinic; their drafts stay for the prescribers to sign or discard), or
    declines someone who asked to join."""
    _ensure_signs_for(actor, membership.clinic_id)
    asked = membership.status == MembershipStatus.PENDING
    if membership.role != MembershipRole.STAFF and not asked:
        raise ValidationError("The pharmacy manages prescribers' memberships.", code="role")
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.status != MembershipStatus.ENDED:
            locked.status = MembershipStatus.ENDED
            locked._history_user = actor
            locked.save(update_fields=["status"])
    return locked


def licence_expiry_notices_send() -> int:
    """Email each prescriber whose licence expires within LICENCE_EXPIRY_NOTICE_DAYS, once per
    expiry date (a renewed licence's new date gets its own notice). Each email is an outbox row
    written with the mark that it was sent, in one transaction per licence; rows another run
    holds are skipped, so two runs at once send each notice once. Returns how many were sent."""
    today = timezone.localdate()
    due = (
        licences_to_renew()
        .filter(expires_on__gte=today)
        .exclude(expiry_notice_for=F("expires_on"))
        .values_list("pk", flat=True)
    )
    sent = 0
    for pk in list(due):
        with transaction.atomic():
            licence = (
                Licence.objects.select_for_update(skip_locked=True)
                .select_related("prescriber__user")
                .filter(pk=pk)
                .exclude(expiry_notice_for=F("expires_on"))
                .first()
            )
            if licence is None:
                continue
            send_licence_expiry_email(licence=licence)
            Licence.objects.filter(pk=pk).update(expiry_notice_for=licence.expires_on)
            sent += 1
    return sent


def membership_accept(*, membership: Membership, actor: User) -> Membership:
    """A prescriber of the clinic, or a pharmacist (for a clinic whose prescribers are gone,
    or that the pharmacy knows), accepts someone who asked to join it (applying with the
    clinic's details); a prescriber then orders for it once the pharmacy approves them."""
    if not is_pharmacist(actor):
        _ensure_signs_for(actor, membership.clinic_id)
    with transaction.atomic():
        locked = Membership.objects.select_for_update().get(pk=membership.pk)
        if locked.status != MembershipStatus.PENDING:
            raise ValidationError(f"{locked.user} has not asked to join.", code="not_pending")
        locked.status = MembershipStatus.ACTIVE
        locked._history_user = actor
        locked.save(update_fields=["status"])
    return locked


def prescriber_join_requests_accept(*, prescriber: Prescriber, actor: User) -> list[Membership]:
    """A pharmacist accepts every request of the prescriber to join a clinic on record."""
    if not is_pharmacist(actor):
        raise PermissionDenied("Only a pharmacist accepts a prescriber into a clinic.")
    asked = Membership.objects.filter(user_id=prescriber.user_id, status=MembershipStatus.PENDING)
    with transaction.atomic():
        accepted = [membership_accept(membership=m, actor=actor) for m in asked.order_by("pk")]
    if not accepted:
        raise ValidationError(f"{prescriber} has not asked to join a clinic.", code="not_pending")
    return accepted
