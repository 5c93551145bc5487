"""A prescriber adds a nurse or assistant to the clinic as staff (an invitation with a one-time
link to set a password) and ends their place there."""

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from core.models import User
from prescribers.models import Membership, MembershipRole, MembershipStatus
from tests.factories import MembershipFactory, PrescriberFactory, clinic_of
from tests.prescribers.test_decisions import activation_link

pytestmark = pytest.mark.django_db

INVITE = {"first_name": "Nora", "last_name": "Nurse", "email": "Nora.Nurse@Clinic.test"}


def memberships() -> list:
    return list(Membership.objects.order_by("pk").values_list("user__email", "role", "status"))


def test_a_prescriber_invites_a_nurse_who_sets_a_password_and_drafts(
    prescriber_client, prescriber, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = prescriber_client.post(reverse("clinic_team"), INVITE)

    assert response["Location"] == reverse("clinic_team")
    nurse = User.objects.get(email="nora.nurse@clinic.test")
    assert not nurse.has_usable_password()
    membership = Membership.objects.get(user=nurse)
    assert (membership.clinic, membership.role, membership.status) == (
        clinic_of(prescriber), MembershipRole.STAFF, MembershipStatus.ACTIVE,
    )  # fmt: skip
    [email] = mail.outbox
    assert email.to == ["nora.nurse@clinic.test"]
    assert email.subject.endswith(f"you are invited to draft LDN orders for {membership.clinic}")
    nurse_client = Client()
    form_page = nurse_client.get(activation_link(email), follow=True)
    assert form_page.context["validlink"] is True
    nurse_client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "A long new passphrase 42", "new_password2": "A long new passphrase 42"},
    )
    nurse.refresh_from_db()
    assert nurse.check_password("A long new passphrase 42")
    signed_in = nurse_client.post(
        reverse("login"), {"username": nurse.email, "password": "A long new passphrase 42"}
    )
    assert signed_in["Location"] == reverse("home")
    home = nurse_client.get(reverse("home"))
    assert home.status_code == 200
    assert "Drafts awaiting a signature" not in home.content.decode()  # none yet
    assert nurse_client.get(reverse("clinic_team")).status_code == 403


def test_inviting_a_member_again_is_refused_on_the_field(prescriber_client, prescriber):
    nurse = MembershipFactory(clinic=clinic_of(prescriber), role=MembershipRole.STAFF).user
    before = memberships()

    page = prescriber_client.post(reverse("clinic_team"), {**INVITE, "email": nurse.email})

    assert page.context["form"].errors["email"] == [
        f"{nurse} already works for {clinic_of(prescriber)}."
    ]
    assert memberships() == before
    assert mail.outbox == []


def test_a_pharmacy_account_cannot_be_invited(prescriber_client, pharmacist):
    before = memberships()
    page = prescriber_client.post(reverse("clinic_team"), {**INVITE, "email": pharmacist.email})
    assert page.context["form"].errors["email"] == [
        "This address is a pharmacy account; use the person's own address."
    ]
    assert memberships() == before


def test_ending_a_staff_membership_closes_the_portal_to_them(client, prescriber):
    clinic = clinic_of(prescriber)
    staff = MembershipFactory(clinic=clinic, role=MembershipRole.STAFF)
    nurse = Client()
    nurse.force_login(staff.user)
    assert nurse.get(reverse("patient_list")).status_code == 200
    client.force_login(prescriber.user)

    client.post(reverse("membership_end", args=[staff.pk]))

    staff.refresh_from_db()
    assert staff.status == MembershipStatus.ENDED
    assert nurse.get(reverse("patient_list")).status_code == 403


def test_a_prescriber_membership_or_another_clinics_is_not_ended_here(client, prescriber):
    colleague = PrescriberFactory(clinic=clinic_of(prescriber))
    elsewhere = MembershipFactory(role=MembershipRole.STAFF)
    client.force_login(prescriber.user)
    before = memberships()

    for membership in (Membership.objects.get(user=colleague.user), elsewhere):
        response = client.post(reverse("membership_end", args=[membership.pk]))
        assert response.status_code == 404
    assert memberships() == before
