"""The patient's side: the clinic invites, the emailed link signs the patient in after their date
of birth (and the terms, the first time), and the patient sees their regimen per bottle, keeps a
diary and asks for a refill, which becomes a draft for the prescriber to sign."""

import datetime
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.models import AccessEvent, User
from orders.models import DiaryEntry, Order, OrderKind, OrderStatus, PatientAccess
from orders.patient_access import diary_entry_record
from orders.services import prescription_refill
from tests.factories import PatientFactory, clinic_of

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^/\s]+(/my/(?:invitation|link)/\?sesame=\S+)")


def link_in(email) -> str:
    """The link's path and query, for the test client."""
    [link] = LINK.findall(email.body)
    return link


def invite(client, patient, capture, email="pat.smith@mail.test", **extra):
    mail.outbox.clear()
    with capture(execute=True):
        response = client.post(
            reverse("patient_invite", args=[patient.pk]),
            {"email": email, "diary_frequency": "daily", **extra},
        )
    return response


def accept(link, patient, *, terms=True, client=None):
    client = client or Client()
    answer = {"date_of_birth": patient.date_of_birth.isoformat()}
    if terms:
        answer["accept_terms"] = "on"
    return client, client.post(link, answer)


@pytest.fixture
def invited(prescriber_client, patient, django_capture_on_commit_callbacks):
    invite(prescriber_client, patient, django_capture_on_commit_callbacks)
    [email] = mail.outbox
    return link_in(email)


@pytest.fixture
def patient_client(invited, patient):
    client, response = accept(invited, patient)
    assert response["Location"] == reverse("patient_home")
    return client


def test_the_invitation_is_a_link_only_and_makes_an_account_without_a_password(
    prescriber_client, prescriber, patient, django_capture_on_commit_callbacks
):
    response = invite(prescriber_client, patient, django_capture_on_commit_callbacks,
                      email=" Pat.Smith@Mail.test ", remind_clinic="on")  # fmt: skip
    assert response["Location"] == reverse("patient_detail", args=[patient.pk])
    access = PatientAccess.objects.get(patient=patient)
    assert (access.status, access.user.email, access.invited_by, access.remind_clinic) == (
        "invited", "pat.smith@mail.test", prescriber.user, True,
    )  # fmt: skip
    assert access.diary_frequency == "daily"
    assert not access.user.has_usable_password()
    [email] = mail.outbox
    assert email.to == ["pat.smith@mail.test"]
    assert email.subject == "Demo Compounding Pharmacy: your invitation to the patient portal"
    for secret in (patient.first_name, patient.last_name, "naltrexone", "LDN", " mg",
                   patient.date_of_birth.isoformat(), str(clinic_of(prescriber))):  # fmt: skip
        assert secret.lower() not in (email.subject + email.body).lower()
    assert "expires in 7 days" in email.body
    page = prescriber_client.get(reverse("patient_detail", args=[patient.pk])).content.decode()
    assert "not yet accepted" in page


def test_opening_the_link_asks_for_the_date_of_birth_and_the_terms_without_using_it(
    invited, patient
):
    client = Client()
    page = client.get(invited)
    assert page.status_code == 200
    assert 'name="date_of_birth"' in page.content.decode()
    assert 'name="accept_terms"' in page.content.decode()
    assert client.get(invited).status_code == 200  # a mail scanner's visit used nothing up
    assert PatientAccess.objects.get(patient=patient).accepted_at is None


def test_a_wrong_date_of_birth_or_no_terms_sign_no_one_in_and_keep_the_link(invited, patient):
    client = Client()
    wrong = client.post(invited, {"date_of_birth": "1990-01-01", "accept_terms": "on"})
    assert wrong.status_code == 200
    assert "not the date of birth your clinic has on record" in wrong.content.decode()
    no_terms = client.post(invited, {"date_of_birth": patient.date_of_birth.isoformat()})
    assert "accept the terms" in no_terms.content.decode()
    assert "_auth_user_id" not in client.session
    assert PatientAccess.objects.get(patient=patient).accepted_at is None
    _, right = accept(invited, patient, client=client)
    assert right["Location"] == reverse("patient_home")


def test_the_link_signs_in_once(patient_client, invited, patient):
    access = PatientAccess.objects.get(patient=patient)
    assert access.status == "active"
    assert access.terms_accepted_at is not None
    assert patient_client.get(reverse("patient_home")).status_code == 200
    again = Client().get(invited)
    assert "This link no longer works" in again.content.decode()
    _, reused = accept(invited, patient)
    assert "This link no longer works" in reused.content.decode()
    assert "_auth_user_id" not in reused.wsgi_request.session


def test_an_invitation_expires_after_seven_days(invited, patient, time_machine):
    time_machine.move_to(timezone.now() + datetime.timedelta(days=7, minutes=1))
    _, response = accept(invited, patient)
    assert "This link no longer works" in response.content.decode()
    assert PatientAccess.objects.get(patient=patient).accepted_at is None


def test_five_wrong_dates_lock_the_account_out(invited, patient):
    client = Client()
    for _ in range(5):
        client.post(invited, {"date_of_birth": "1990-01-01", "accept_terms": "on"})
    _, response = accept(invited, patient, client=client)
    assert "Too many wrong answers" in response.content.decode()
    assert PatientAccess.objects.get(patient=patient).accepted_at is None


def test_inviting_again_ends_the_earlier_link(
    invited, prescriber_client, patient, django_capture_on_commit_callbacks
):
    invite(prescriber_client, patient, django_capture_on_commit_callbacks)
    [email] = mail.outbox
    _, old = accept(invited, patient)
    assert "This link no longer works" in old.content.decode()
    _, new = accept(link_in(email), patient)
    assert new["Location"] == reverse("patient_home")


def test_an_address_of_another_account_is_refused_on_the_field(
    prescriber_client, prescriber, patient, django_capture_on_commit_callbacks
):
    response = invite(prescriber_client, patient, django_capture_on_commit_callbacks,
                      email=prescriber.user.email)  # fmt: skip
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "email": ["This address belongs to another account: use the patient's own."]
    }
    assert not PatientAccess.objects.exists()
    assert mail.outbox == []


def test_revoking_ends_the_session_and_the_links_at_once(
    patient_client, prescriber_client, patient, django_capture_on_commit_callbacks
):
    response = prescriber_client.post(reverse("patient_revoke", args=[patient.pk]))
    assert response["Location"] == reverse("patient_detail", args=[patient.pk])
    access = PatientAccess.objects.get(patient=patient)
    assert access.status == "revoked"
    assert not access.user.is_active
    page = patient_client.get(reverse("patient_home"))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("patient_sign_in"))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        Client().post(reverse("patient_sign_in"), {"email": access.user.email})
    assert mail.outbox == []


def test_another_clinic_cannot_invite_or_revoke(other_prescriber, patient_client, patient):
    client = Client()
    client.force_login(other_prescriber.user)
    before = list(PatientAccess.objects.values_list("pk", "revoked_at", "invited_at"))
    assert client.post(reverse("patient_revoke", args=[patient.pk])).status_code == 404
    invitation = client.post(
        reverse("patient_invite", args=[patient.pk]),
        {"email": "x@mail.test", "diary_frequency": "weekly"},
    )
    assert invitation.status_code == 404
    assert list(PatientAccess.objects.values_list("pk", "revoked_at", "invited_at")) == before


def test_a_patient_asks_for_a_sign_in_link_and_an_unknown_address_gets_the_same_page(
    patient_client, patient, django_capture_on_commit_callbacks
):
    email = PatientAccess.objects.get(patient=patient).user.email
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        known = Client().post(reverse("patient_sign_in"), {"email": email.upper()}, follow=True)
        unknown = Client().post(
            reverse("patient_sign_in"), {"email": "nobody@mail.test"}, follow=True
        )
    said = [[str(m) for m in answer.context["messages"]] for answer in (known, unknown)]
    assert said == 2 * [
        [
            "If this address belongs to a patient whose clinic invited them, a sign-in link is on "
            "its way. It works once, for 30 minutes."
        ]
    ]
    [sent] = mail.outbox
    assert sent.to == [email]
    assert sent.subject == "Demo Compounding Pharmacy: your sign-in link"
    _, response = accept(link_in(sent), patient, terms=False)
    assert response["Location"] == reverse("patient_home")


def test_the_patient_pages_refuse_everyone_else(prescriber_client, pharmacist):
    pharmacist_client = Client()
    pharmacist_client.force_login(pharmacist)
    for other in (prescriber_client, pharmacist_client):
        assert other.get(reverse("patient_home")).status_code == 403
    anonymous = Client().get(reverse("diary_entry_create"))
    assert anonymous["Location"].startswith(reverse("patient_sign_in"))


def test_a_patient_is_refused_the_clinics_pages(patient_client, patient):
    assert patient_client.get(reverse("patient_list")).status_code == 403
    assert patient_client.get(reverse("patient_detail", args=[patient.pk])).status_code == 403
    assert patient_client.get(reverse("home"))["Location"] == reverse("patient_home")


# --- The regimen, and asking for a refill --------------------------------------------------


@pytest.fixture
def dispensed_patient_client(dispensed_order, patient, prescriber):
    """The patient of an order of 1.5 mg for 14 days then 3 mg for 30, dispensed on 3/2/2026."""
    user = User.objects.create_user(email="pat@mail.test")
    now = timezone.now()
    PatientAccess.objects.create(
        patient=patient, user=user, invited_by=prescriber.user, invited_at=now,
        accepted_at=now, terms_accepted_at=now,
    )  # fmt: skip
    return signed_in_patient(user)


def signed_in_patient(user) -> Client:
    client = Client()
    client.force_login(user, backend="core.auth.LinkBackend")
    return client


def test_the_patient_sees_each_bottle_with_its_dates_and_the_one_to_take_now(
    dispensed_patient_client, patient
):
    response = dispensed_patient_client.get(reverse("patient_home"))
    regimen = response.context["regimen"]
    assert [(b.drug, b.quantity, b.first_day, b.last_day, b.in_use) for b in regimen.bottles] == [
        ("Naltrexone HCl 1.5 mg capsule", "14 capsules", datetime.date(2026, 3, 2),
         datetime.date(2026, 3, 15), True),
        ("Naltrexone HCl 3 mg capsule", "30 capsules", datetime.date(2026, 3, 16),
         datetime.date(2026, 4, 14), False),
    ]  # fmt: skip
    assert regimen.bottles[0].directions == (
        "Take 1 capsule (1.5 mg) at bedtime for 14 days, then start the 3 mg bottle.",
    )
    assert regimen.runs_out_on == datetime.date(2026, 4, 15)
    assert regimen.refill_from == datetime.date(2026, 4, 7)  # 80 % of 44 days: day 36
    page = response.content.decode()
    assert "Take from this bottle now" in page
    assert "Next refill from <strong>Apr 7, 2026</strong>" in page
    assert 'id="ask-refill"' not in page  # too soon
    assert "(217) 555-0100" in page
    [event] = AccessEvent.objects.filter(object_id=patient.pk, user__email="pat@mail.test")
    assert event.path == reverse("patient_home")


def test_a_refill_asked_for_is_a_draft_for_the_prescriber_and_only_one(
    dispensed_patient_client, dispensed_order, prescriber, time_machine
):
    before = Order.objects.count()
    too_soon = dispensed_patient_client.post(reverse("patient_refill"))
    assert too_soon["Location"] == reverse("patient_home")
    assert Order.objects.count() == before
    time_machine.move_to(datetime.datetime(2026, 4, 7, 14, 0, tzinfo=datetime.UTC))
    # Five weeks later: signed in again (a session lasts 12 hours).
    dispensed_patient_client = signed_in_patient(User.objects.get(email="pat@mail.test"))
    page = dispensed_patient_client.get(reverse("patient_home")).content.decode()
    assert 'id="ask-refill"' in page
    dispensed_patient_client.post(reverse("patient_refill"))
    refill = Order.objects.get(kind=OrderKind.REFILL)
    assert (refill.status, refill.signer, refill.prescription, refill.ship_to) == (
        OrderStatus.DRAFT, prescriber, dispensed_order.prescription, dispensed_order.ship_to,
    )  # fmt: skip
    event = refill.events.get()
    assert event.detail == (
        f"Refill requested: drafted for {prescriber} to sign. (asked for by the patient on the "
        "portal)"
    )
    page = dispensed_patient_client.get(reverse("patient_home")).content.decode()
    assert "A refill is on its way: awaiting signature (your prescriber signs it next)." in page
    dispensed_patient_client.post(reverse("patient_refill"))
    assert Order.objects.filter(kind=OrderKind.REFILL).count() == 1


# --- The diary -----------------------------------------------------------------------------

ENTRY = {
    "day": "2026-03-02", "dose_taken": "yes", "dose_mg": "1.5", "time_taken": "bedtime",
    "score": "6", "sleep_quality": "4", "side_effects": ["vivid_dreams", "other"],
    "other_side_effect": "dry mouth", "note": "Slept late.",
}  # fmt: skip


def test_an_entry_is_written_and_corrected_for_24_hours_with_its_history(
    dispensed_patient_client, patient, time_machine
):
    form = dispensed_patient_client.get(reverse("diary_entry_create"))
    assert form.context["form"].initial["dose_mg"] == Decimal("1.5")  # today's step
    assert "Your pain today (0 = none, 10 = the worst)" in form.content.decode()
    response = dispensed_patient_client.post(reverse("diary_entry_create"), ENTRY)
    assert response["Location"] == reverse("patient_home")
    entry = DiaryEntry.objects.get(patient=patient)
    assert (entry.day, entry.dose_mg, entry.time_taken, entry.score, entry.sleep_quality) == (
        datetime.date(2026, 3, 2), Decimal("1.5"), "bedtime", 6, 4,
    )  # fmt: skip
    assert (entry.side_effects, entry.other_side_effect) == (["vivid_dreams", "other"], "dry mouth")
    again = dispensed_patient_client.post(reverse("diary_entry_create"), ENTRY)
    assert again.context["form"].errors == {
        "day": ["There is already an entry for that day: correct it instead."]
    }
    time_machine.shift(datetime.timedelta(hours=23))
    dispensed_patient_client = signed_in_patient(User.objects.get(email="pat@mail.test"))
    corrected = dispensed_patient_client.post(
        reverse("diary_entry_update", args=[entry.pk]), {**ENTRY, "score": "7"}
    )
    assert corrected["Location"] == reverse("patient_home")
    entry.refresh_from_db()
    assert entry.score == 7
    assert [h.score for h in entry.history.order_by("history_date")] == [6, 7]
    time_machine.shift(datetime.timedelta(hours=2))
    dispensed_patient_client = signed_in_patient(User.objects.get(email="pat@mail.test"))
    late = dispensed_patient_client.post(
        reverse("diary_entry_update", args=[entry.pk]), {**ENTRY, "score": "2"}
    )
    assert late["Location"] == reverse("patient_home")
    entry.refresh_from_db()
    assert entry.score == 7
    assert entry.history.count() == 2


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        ({"day": "2026-03-03"}, {"day": ["The day cannot be in the future."]}),
        ({"day": "2026-02-20"}, {"day": ["Only the past 7 days can be added."]}),
        ({"score": "11"}, {"score": [
            "Select a valid choice. 11 is not one of the available choices."]}),
        ({"dose_mg": ""}, {"dose_mg": [
            "Enter the dose you took (it is on your bottle's label)."]}),
        ({"other_side_effect": ""}, {"other_side_effect": [
            "Say which other side effect you had."]}),
        ({"day": "\uff12\uff10\uff12\uff16-03-02"}, {"day": [
            "Enter the date in ordinary digits (0-9)."]}),
    ],
)  # fmt: skip
def test_a_wrong_entry_is_refused_on_its_field_and_writes_nothing(
    dispensed_patient_client, change, errors
):
    response = dispensed_patient_client.post(reverse("diary_entry_create"), {**ENTRY, **change})
    assert response.status_code == 200
    assert response.context["form"].errors == errors
    assert not DiaryEntry.objects.exists()


def test_no_dose_taken_keeps_no_dose(dispensed_patient_client, patient):
    dispensed_patient_client.post(reverse("diary_entry_create"), {**ENTRY, "dose_taken": "no"})
    entry = DiaryEntry.objects.get(patient=patient)
    assert (entry.dose_taken, entry.dose_mg, entry.time_taken) == (False, None, "")


def test_another_patients_entry_is_not_there(dispensed_patient_client, prescriber):
    other = PatientFactory(clinic=clinic_of(prescriber), created_by=prescriber.user)
    user = User.objects.create_user(email="other@mail.test")
    now = timezone.now()
    access = PatientAccess.objects.create(
        patient=other, user=user, invited_by=prescriber.user, invited_at=now, accepted_at=now
    )
    entry = diary_entry_record(access=access, actor=user, day=now.date(), dose_taken=False,
                               score=3, sleep_quality=5)  # fmt: skip
    url = reverse("diary_entry_update", args=[entry.pk])
    assert dispensed_patient_client.get(url).status_code == 404
    assert dispensed_patient_client.post(url, {**ENTRY, "score": "9"}).status_code == 404
    entry.refresh_from_db()
    assert entry.score == 3


def test_the_patient_chooses_their_diary_reminders(dispensed_patient_client, patient):
    response = dispensed_patient_client.post(
        reverse("patient_settings"), {"diary_frequency": "never"}
    )
    assert response["Location"] == reverse("patient_settings")
    assert PatientAccess.objects.get(patient=patient).diary_frequency == "never"


def test_only_the_patient_may_ask_for_their_refill(dispensed_order, prescriber, time_machine):
    time_machine.move_to(datetime.datetime(2026, 4, 7, 14, 0, tzinfo=datetime.UTC))
    before = Order.objects.count()
    with pytest.raises(PermissionDenied):
        prescription_refill(
            prescription=dispensed_order.prescription, actor=prescriber.user, ship_to="clinic",
            needed_by=None, idempotency_key=None, by_patient=True,
        )  # fmt: skip
    assert Order.objects.count() == before


def test_a_patient_signed_out_for_idleness_is_sent_to_their_own_sign_in_page(
    patient_client, time_machine
):
    # (the session keeps whole seconds: a second short of the limit, give or take one)
    time_machine.move_to(timezone.now() + datetime.timedelta(minutes=14, seconds=58))
    assert patient_client.get(reverse("diary_entry_create")).status_code == 200
    time_machine.move_to(timezone.now() + datetime.timedelta(minutes=15))
    response = patient_client.get(reverse("diary_entry_create"))
    assert response["Location"] == f"{reverse('patient_sign_in')}?next=/my/diary/new/"
