import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse

from prescribers.models import PrescriberEvent, PrescriberStatus
from tests.factories import PrescriberFactory, clinic_of
from tests.signing_in import verified_staff_login

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:prescribers_prescriber_changelist")


def run_action(client, action, prescribers, **extra):
    return client.post(
        CHANGELIST,
        {"action": action, ACTION_CHECKBOX_NAME: [p.pk for p in prescribers], **extra},
        follow=True,
    )


def test_pharmacist_approves_from_the_changelist(
    pharmacist_client, django_capture_on_commit_callbacks
):
    applicants = PrescriberFactory.create_batch(2, status=PrescriberStatus.PENDING)

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(pharmacist_client, "approve", applicants)

    assert [str(m) for m in response.context["messages"]] == ["2 prescriber(s) approved."]
    for applicant in applicants:
        applicant.refresh_from_db()
        assert applicant.status == PrescriberStatus.APPROVED
    assert sorted(m.to[0] for m in mail.outbox) == sorted(a.user.email for a in applicants)


def test_decline_asks_for_a_reason_first(pharmacist_client):
    applicant = PrescriberFactory(status=PrescriberStatus.PENDING)

    page = run_action(pharmacist_client, "decline", [applicant])

    assert page.templates[0].name == "admin/action_form.html"
    applicant.refresh_from_db()
    assert applicant.status == PrescriberStatus.PENDING

    run_action(
        pharmacist_client, "decline", [applicant], reason="NPI belongs to someone else",
        _confirmed="1",
    )  # fmt: skip

    applicant.refresh_from_db()
    assert applicant.status == PrescriberStatus.DECLINED
    assert applicant.events.last().note == "NPI belongs to someone else"


def test_refused_transition_is_reported_not_raised(pharmacist_client):
    approved = PrescriberFactory(status=PrescriberStatus.APPROVED)

    response = run_action(pharmacist_client, "approve", [approved])

    assert [str(m) for m in response.context["messages"]] == [
        f"{approved}: A prescriber who is approved cannot be moved to approved."
    ]
    assert PrescriberEvent.objects.count() == 0


def test_technician_sees_prescribers_but_cannot_decide(client, technician):
    applicant = PrescriberFactory(status=PrescriberStatus.PENDING)
    verified_staff_login(client, technician)

    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert page.context["action_form"] is None  # no action is offered to a technician

    run_action(client, "approve", [applicant])
    applicant.refresh_from_db()
    assert applicant.status == PrescriberStatus.PENDING
    assert PrescriberEvent.objects.count() == 0
    assert mail.outbox == []


def test_admin_pages_open(superuser, client, prescriber, patient):
    verified_staff_login(client, superuser)
    for url in (
        reverse("admin:index"),
        CHANGELIST,
        reverse("admin:prescribers_prescriber_change", args=[prescriber.pk]),
        reverse("admin:prescribers_clinic_changelist"),
        reverse("admin:prescribers_clinic_change", args=[clinic_of(prescriber).pk]),
        reverse("admin:orders_patient_changelist"),
        reverse("admin:orders_patient_change", args=[patient.pk]),
        reverse("admin:core_user_changelist"),
        reverse("admin:core_user_change", args=[prescriber.user_id]),
        reverse("admin:core_user_add"),
    ):
        assert client.get(url).status_code == 200, url
