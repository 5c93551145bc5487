"""Applying with the details of a clinic already on record asks to join it instead of making a
second clinic; its prescribers accept or decline on the team page."""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse

from prescribers.models import Clinic, Membership, MembershipRole, MembershipStatus, Prescriber
from prescribers.services import prescriber_approve, prescriber_join_requests_accept
from tests.factories import ClinicFactory, PatientFactory, PrescriberFactory, StaffFactory
from tests.factories import application_form as application
from tests.prescribers.test_admin import run_action

pytestmark = pytest.mark.django_db


@pytest.fixture
def prairie():
    """The clinic on record, with its prescriber and a patient."""
    clinic = ClinicFactory(name="Prairie Wellness", postal_code="61602", phone="+13095550133")
    PatientFactory(clinic=clinic, last_name="Prairiedweller")
    return clinic, PrescriberFactory(clinic=clinic)


def memberships() -> list:
    return list(Membership.objects.order_by("pk").values_list("user__email", "clinic_id", "status"))


def test_applying_with_a_clinic_on_record_asks_to_join_it(client, prairie):
    clinic, _ = prairie
    data = application(**{"clinic-name": "  prairie   WELLNESS "})

    response = client.post(reverse("prescriber_apply"), data)

    assert response["Location"] == reverse("prescriber_apply_done")
    assert Clinic.objects.count() == 1  # no second clinic
    applicant = Prescriber.objects.get(npi="1234567893")
    membership = Membership.objects.get(user=applicant.user)
    assert (membership.clinic, membership.role, membership.status) == (
        clinic, MembershipRole.PRESCRIBER, MembershipStatus.PENDING,
    )  # fmt: skip


def test_another_postal_code_or_phone_is_another_clinic(client, prairie):
    client.post(reverse("prescriber_apply"), application(**{"clinic-postal_code": "61603"}))
    assert Clinic.objects.count() == 2
    applicant = Prescriber.objects.get(npi="1234567893")
    assert Membership.objects.get(user=applicant.user).status == MembershipStatus.ACTIVE


def test_the_clinics_prescriber_accepts_and_the_pharmacy_approves(client, prairie):
    _clinic, prescriber = prairie
    client.post(reverse("prescriber_apply"), application())
    applicant = Prescriber.objects.get(npi="1234567893")
    asked = Membership.objects.get(user=applicant.user)
    prescriber_approve(prescriber=applicant, actor=StaffFactory(group="Pharmacist"))
    newcomer = Client()
    newcomer.force_login(applicant.user)
    waiting = newcomer.get(reverse("patient_list"))  # not accepted yet: the page says so
    assert waiting.status_code == 403
    assert "You asked to join Prairie Wellness." in waiting.content.decode()

    client.force_login(prescriber.user)
    team = client.get(reverse("clinic_team")).content.decode()
    assert "Asked to join" in team and applicant.user.email in team
    response = client.post(reverse("membership_accept", args=[asked.pk]))

    assert response["Location"] == reverse("clinic_team")
    asked.refresh_from_db()
    assert asked.status == MembershipStatus.ACTIVE
    listed = newcomer.get(reverse("patient_list")).context["patients"]
    assert [p.last_name for p in listed] == ["Prairiedweller"]


def test_declined_or_not_this_clinics_to_accept(client, prairie):
    _clinic, prescriber = prairie
    client.post(reverse("prescriber_apply"), application())
    asked = Membership.objects.get(status=MembershipStatus.PENDING)
    outsider = PrescriberFactory()
    client.force_login(outsider.user)
    before = memberships()

    for name in ("membership_accept", "membership_end"):
        assert client.post(reverse(name, args=[asked.pk])).status_code == 404
    assert memberships() == before

    client.force_login(prescriber.user)
    client.post(reverse("membership_end", args=[asked.pk]))
    asked.refresh_from_db()
    assert asked.status == MembershipStatus.ENDED
    again = client.post(reverse("membership_accept", args=[asked.pk]))
    assert again.status_code == 404  # no longer asking
    assert Membership.objects.get(pk=asked.pk).status == MembershipStatus.ENDED


def test_the_pharmacy_accepts_a_join_request_when_the_clinic_cannot(
    client, prairie, pharmacist_client, technician
):
    """A clinic whose prescribers are gone cannot accept anyone: a pharmacist does, from the
    prescribers' list; a technician may not, and someone who asked nothing is told so."""
    client.post(reverse("prescriber_apply"), application())
    applicant = Prescriber.objects.get(npi="1234567893")
    bystander = PrescriberFactory()
    before = memberships()
    with pytest.raises(PermissionDenied):
        prescriber_join_requests_accept(prescriber=applicant, actor=technician)
    assert memberships() == before

    answer = run_action(pharmacist_client, "accept_join_requests", [applicant, bystander])

    assert [str(m) for m in answer.context["messages"]] == [
        f"{bystander}: {bystander} has not asked to join a clinic.",
        "1 prescriber accepted into their clinic.",
    ]
    asked = Membership.objects.get(user=applicant.user)
    assert asked.status == MembershipStatus.ACTIVE
    assert asked.history.latest().history_user.groups.get().name == "Pharmacist"
    assert Membership.objects.get(user=bystander.user).status == MembershipStatus.ACTIVE
