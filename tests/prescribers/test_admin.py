import datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core import mail
from django.urls import reverse

from prescribers.models import Prescriber, PrescriberEvent, PrescriberStatus
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

    assert [str(m) for m in response.context["messages"]] == ["2 prescribers approved."]
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


def test_a_pharmacist_records_a_licence_and_a_technician_only_reads_it(
    pharmacist_client, client, technician, prescriber
):
    url = reverse("admin:prescribers_prescriber_change", args=[prescriber.pk])
    page = pharmacist_client.get(url)
    data = {
        key: value for key, value in page.context["adminform"].form.initial.items()
        if key in Prescriber.PROFILE_FIELDS
    } | {"phone": "(217) 555-0143"}  # fmt: skip
    (existing,) = prescriber.licences.all()
    formsets = {
        "licences-TOTAL_FORMS": "2", "licences-INITIAL_FORMS": "1",
        "licences-0-id": str(existing.pk), "licences-0-prescriber": str(prescriber.pk),
        "licences-0-state": existing.state, "licences-0-number": existing.number,
        "licences-0-expires_on": existing.expires_on.isoformat(),
        "licences-1-prescriber": str(prescriber.pk), "licences-1-state": "WI",
        "licences-1-number": "WI-4411", "licences-1-expires_on": "2027-06-30",
        "events-TOTAL_FORMS": "0", "events-INITIAL_FORMS": "0",
    }  # fmt: skip

    response = pharmacist_client.post(url, data | formsets)

    assert response.status_code == 302, response.context["errors"]
    assert list(prescriber.licences.values_list("state", "number", "expires_on")) == [
        ("IL", existing.number, existing.expires_on),
        ("WI", "WI-4411", datetime.date(2027, 6, 30)),
    ]
    # A technician sees the licences, with nothing to change.
    verified_staff_login(client, technician)
    seen = client.get(url).content.decode()
    assert "WI-4411" in seen and 'name="licences-1-number"' not in seen
