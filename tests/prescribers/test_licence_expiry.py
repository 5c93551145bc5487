"""Licences expiring within 30 days are flagged to the prescriber (dashboard, one email through
the outbox per expiry date) and to the pharmacy (admin work queue); an expired licence holds
the prescriber's unsigned and unverified orders for that state."""

import datetime
import uuid

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from orders.models import OrderStatus
from orders.services import SigningRefused, order_sign, order_submit
from pharmacy.tasks import send_licence_expiry_notices
from pharmacy.workbench import licence_queues
from prescribers.models import Licence, MembershipRole
from tests.factories import (
    TEST_PASSWORD,
    TITRATION,
    LicenceFactory,
    MembershipFactory,
    PatientFactory,
    clinic_of,
)

pytestmark = pytest.mark.django_db

TODAY = datetime.date(2026, 3, 2)  # the clock fixture's day


def in_days(days: int) -> datetime.date:
    return TODAY + datetime.timedelta(days=days)


@pytest.fixture
def illinois(clock, prescriber) -> Licence:
    licence = Licence.objects.get(prescriber=prescriber, state="IL")
    licence.expires_on = in_days(20)
    licence.save()
    return licence


def test_a_licence_expiring_within_30_days_is_emailed_once_per_expiry_date(
    clock, illinois, prescriber, django_capture_on_commit_callbacks
):
    LicenceFactory(prescriber=prescriber, state="WI", expires_on=in_days(31))  # not yet
    LicenceFactory(prescriber=prescriber, state="IN", expires_on=in_days(-1))  # too late

    with django_capture_on_commit_callbacks(execute=True):
        assert send_licence_expiry_notices() == 1
        assert send_licence_expiry_notices() == 0  # a second run the same day: nothing

    [message] = mail.outbox
    assert message.to == [prescriber.user.email]
    assert message.subject == (
        "Demo Compounding Pharmacy: your Illinois licence expires on 03/22/2026"
    )
    assert f"Illinois licence {illinois.number} expires on\n03/22/2026" in message.body
    illinois.refresh_from_db()
    assert illinois.expiry_notice_for == in_days(20)

    # Renewed for a year: nothing now; 30 days before the new date, a notice of its own.
    illinois.expires_on = in_days(365)
    illinois.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert send_licence_expiry_notices() == 0
    clock.move_to(datetime.datetime(2027, 2, 10, 9, 0, tzinfo=datetime.UTC), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert send_licence_expiry_notices() == 1  # Wisconsin's has expired meanwhile
    assert [m.subject for m in mail.outbox[1:]] == [
        "Demo Compounding Pharmacy: your Illinois licence expires on 03/02/2027"
    ]


def test_the_dashboard_flags_licences_to_renew(clock, illinois, prescriber, prescriber_client):
    LicenceFactory(prescriber=prescriber, state="IN", expires_on=in_days(-3))
    LicenceFactory(prescriber=prescriber, state="WI", expires_on=in_days(200))

    flagged = prescriber_client.get(reverse("home"))

    assert list(flagged.context["licences_to_renew"]) == [
        Licence.objects.get(state="IN"),
        illinois,
    ]
    page = flagged.content.decode()
    assert "Indiana licence" in page and "expired on 02/27/2026" in page
    assert "orders for patients in Indiana wait until it is renewed" in page
    assert "expires on 03/22/2026 (in 20 days)" in page
    assert "Wisconsin" not in page

    # The clinic's staff see their prescribers' licences, with whose they are.
    nurse = MembershipFactory(clinic=clinic_of(prescriber), role=MembershipRole.STAFF).user
    staff = Client()
    staff.force_login(nurse)
    page = staff.get(reverse("home")).content.decode()
    assert f"{prescriber}: Illinois licence" in page


def test_the_admin_queues_count_licences_expired_and_expiring(
    clock, illinois, prescriber, pharmacist_client
):
    LicenceFactory(prescriber=prescriber, state="IN", expires_on=in_days(-3))
    LicenceFactory(state="WI", expires_on=in_days(30))
    LicenceFactory(state="OH", expires_on=in_days(31))

    assert [(q["count"], q["url"]) for q in licence_queues()] == [
        (1, "/admin/prescribers/licence/?expiry=expired"),
        (2, "/admin/prescribers/licence/?expiry=soon"),
    ]
    index = pharmacist_client.get(reverse("admin:index")).content.decode()
    assert "Prescribers&#x27; licences expiring within 30 days" in index
    listed = pharmacist_client.get(reverse("admin:prescribers_licence_changelist") + "?expiry=soon")
    assert [lic.state for lic in listed.context["cl"].result_list] == ["IL", "WI"]


def test_an_expired_licence_holds_the_drafts_for_that_state(clock, prescriber, illinois):
    nurse = MembershipFactory(clinic=clinic_of(prescriber), role=MembershipRole.STAFF).user
    patient = PatientFactory(clinic=clinic_of(prescriber), state="IL")
    draft = order_submit(
        actor=nurse, patient=patient, regimen=TITRATION, diagnosis_codes=["M79.7"],
        reason_for_compounding="Strength not available", ship_to="clinic", needed_by=None,
        acknowledged=[], idempotency_key=uuid.uuid4(), signer=prescriber,
    )  # fmt: skip
    clock.move_to(datetime.datetime(2026, 3, 23, 9, 0, tzinfo=datetime.UTC), tick=False)

    with pytest.raises(SigningRefused, match="licence"):
        order_sign(orders=[draft], actor=prescriber.user, password=TEST_PASSWORD)
    draft.refresh_from_db()
    assert draft.status == OrderStatus.DRAFT
