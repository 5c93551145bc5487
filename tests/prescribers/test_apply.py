import datetime

import pytest
from django.core import mail
from django.urls import reverse

from core.models import User
from prescribers.models import Clinic, Licence, Prescriber, PrescriberEvent, PrescriberStatus
from tests.factories import PrescriberFactory, clinic_of
from tests.factories import application_form as application

pytestmark = pytest.mark.django_db

APPLY_URL = reverse("prescriber_apply")


def assert_nothing_written():
    applicants = User.objects.filter(is_staff=False)  # staff wrote the catalogue's records
    assert (applicants.count(), Clinic.objects.count(), Prescriber.objects.count()) == (0, 0, 0)
    assert PrescriberEvent.objects.count() == Licence.objects.count() == 0


def test_page_shows_every_field(client):
    response = client.get(APPLY_URL)
    assert response.status_code == 200
    for name in application():
        assert f'name="{name}"' in response.content.decode()


def test_application_waits_for_the_pharmacy(client):
    response = client.post(APPLY_URL, application())

    assert response.status_code == 302
    assert response["Location"] == reverse("prescriber_apply_done")
    prescriber = Prescriber.objects.select_related("user").get()
    assert prescriber.status == PrescriberStatus.PENDING
    assert prescriber.npi == "1234567893"
    assert prescriber.credentials == "NP"
    assert str(prescriber.phone.as_e164) == "+12175550181"
    assert prescriber.user.email == "robin.applicant@clinic.example.test"
    assert not prescriber.user.has_usable_password()
    assert clinic_of(prescriber).name == "Prairie Wellness"
    assert clinic_of(prescriber).label_email == "labels@prairie.example.test"
    (licence,) = prescriber.licences.all()
    assert (licence.state, licence.number) == ("IL", "NP-77881")
    assert licence.expires_on > datetime.date.today()
    event = PrescriberEvent.objects.get()
    assert (event.from_status, event.to_status, event.actor) == ("", "pending", None)
    assert mail.outbox == []


def test_npi_typed_with_spaces_is_accepted(client):
    client.post(APPLY_URL, application(npi="1234 567-893"))
    assert Prescriber.objects.get().npi == "1234567893"


@pytest.mark.parametrize(
    ("npi", "message"),
    [
        ("1234567890", "This NPI fails its check digit; please check it for a typing error."),
        ("3234567893", "An NPI starts with 1 or 2."),
        ("12345", "An NPI is exactly 10 digits."),
        ("", "This field is required."),
    ],
)
def test_invalid_npi_is_refused_on_the_field(client, npi, message):
    response = client.post(APPLY_URL, application(npi=npi))

    assert response.status_code == 200
    assert response.context["prescriber_form"].errors == {"npi": [message]}
    assert_nothing_written()


def test_duplicate_npi_is_refused(client):
    PrescriberFactory(npi="1234567893")
    before = (User.objects.count(), Clinic.objects.count(), Prescriber.objects.count())

    response = client.post(APPLY_URL, application())

    assert response.context["prescriber_form"].errors == {
        "npi": ["A prescriber with this NPI has already applied or has an account."]
    }
    assert (User.objects.count(), Clinic.objects.count(), Prescriber.objects.count()) == before


def test_an_address_with_an_account_gets_the_same_answer_and_an_email(
    client, django_capture_on_commit_callbacks
):
    """The page tells no one which addresses have accounts: an application with a registered
    address (in any case) is answered as any other, writes nothing, and the address's owner
    gets an email saying they already have an account."""
    PrescriberFactory(user__email="robin.applicant@clinic.example.test")
    before = (User.objects.count(), Clinic.objects.count(), Prescriber.objects.count())

    fresh = client.post(APPLY_URL, application(email="someone.new@clinic.example.test", npi=""))
    with django_capture_on_commit_callbacks(execute=True):
        known = client.post(APPLY_URL, application(email="ROBIN.applicant@clinic.example.test"))

    assert known.status_code == 302 and known["Location"] == reverse("prescriber_apply_done")
    assert fresh.status_code == 200  # (its NPI was left out: the form's own message)
    assert (User.objects.count(), Clinic.objects.count(), Prescriber.objects.count()) == before
    (email,) = mail.outbox
    assert email.to == ["robin.applicant@clinic.example.test"]
    assert email.subject == "Demo Compounding Pharmacy: you already have an account"
    assert "already has an account" in email.body
    assert "/accounts/password_reset/" in email.body


def test_a_new_address_and_a_registered_one_are_answered_alike(client):
    PrescriberFactory(user__email="robin.applicant@clinic.example.test")
    new = client.post(APPLY_URL, application(email="new.person@clinic.example.test"))
    known = client.post(
        APPLY_URL, application(email="robin.applicant@clinic.example.test", npi="1245319599")
    )
    assert (new.status_code, new["Location"]) == (known.status_code, known["Location"])


@pytest.mark.parametrize(
    ("field", "value", "form", "message"),
    [
        (
            "credentials",
            "RN",
            "prescriber_form",
            "Select a valid choice. RN is not one of the available choices.",
        ),
        ("email", "not-an-email", "prescriber_form", "Enter a valid email address."),
        (
            "licence-state",
            "ZZ",
            "licence_form",
            "Select a valid choice. ZZ is not one of the available choices.",
        ),
        ("licence-number", "", "licence_form", "This field is required."),
        (
            "licence-expires_on",
            "2020-01-31",
            "licence_form",
            "This licence has expired: apply with a licence that is active.",
        ),
        (
            "licence-expires_on",
            "\uff12\uff10\uff13\uff10-01-31",
            "licence_form",
            "Enter the date in ordinary digits (0-9).",
        ),
        (
            "phone",
            "12",
            "prescriber_form",
            "Enter a valid phone number (e.g. (201) 555-0123) or a number with an international "
            "call prefix.",
        ),
        (
            "clinic-postal_code",
            "ABCDE",
            "clinic_form",
            "Enter a zip code in the format XXXXX or XXXXX-XXXX.",
        ),
        ("clinic-label_email", "", "clinic_form", "This field is required."),
    ],
)
def test_bad_fields_get_messages_and_write_nothing(client, field, value, form, message):
    response = client.post(APPLY_URL, application(**{field: value}))

    assert response.status_code == 200
    errors = response.context[form].errors
    assert errors == {field.split("-", 1)[-1]: [message]}
    assert_nothing_written()


def test_both_forms_report_errors_at_once(client):
    response = client.post(APPLY_URL, application(npi="1234567890", **{"clinic-name": ""}))

    assert set(response.context["prescriber_form"].errors) == {"npi"}
    assert set(response.context["clinic_form"].errors) == {"name"}
    assert_nothing_written()


def test_empty_post_is_a_page_of_messages_not_an_error(client):
    response = client.post(APPLY_URL, {})
    assert response.status_code == 200
    assert response.context["prescriber_form"].errors["npi"] == ["This field is required."]
    assert response.context["clinic_form"].errors["name"] == ["This field is required."]
    assert_nothing_written()
