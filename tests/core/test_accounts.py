import re

import pytest
from django.core import mail
from django.db import IntegrityError, transaction
from django.urls import reverse

from core.models import User
from pharmacy.models import Delivery, DeliveryKind, DeliveryStatus
from prescribers import services
from prescribers.models import PrescriberStatus
from tests.factories import PrescriberFactory, UserFactory
from tests.signing_in import sign_in

pytestmark = pytest.mark.django_db

LOGIN_URL = reverse("login")
REFUSED = (
    "Please enter a correct email and password. Accounts still awaiting the pharmacy's approval, "
    "or suspended, cannot sign in."
)


def post_login(client, email, password):
    return client.post(LOGIN_URL, {"username": email, "password": password})


def test_login_form_keeps_django_field_names(client):
    page = client.get(LOGIN_URL).content.decode()
    assert 'name="username"' in page
    assert 'name="password"' in page
    assert 'type="email"' in page


def test_approved_prescriber_signs_in_with_email_in_any_case(client, prescriber, password):
    response = post_login(client, prescriber.user.email.upper(), password)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200


@pytest.mark.parametrize(
    "status", [PrescriberStatus.PENDING, PrescriberStatus.DECLINED, PrescriberStatus.SUSPENDED]
)
def test_prescriber_not_approved_cannot_post_login(client, password, status):
    prescriber = PrescriberFactory(status=status)

    response = post_login(client, prescriber.user.email, password)

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [REFUSED]
    assert "_auth_user_id" not in client.session


def test_wrong_password_gets_the_same_message(client, prescriber):
    response = post_login(client, prescriber.user.email, "not-the-password")
    assert response.context["form"].non_field_errors() == [REFUSED]


def test_suspension_ends_an_open_session(client, prescriber, pharmacist):
    client.force_login(prescriber.user)
    assert client.get(reverse("patient_list")).status_code == 200

    services.prescriber_suspend(prescriber=prescriber, actor=pharmacist, reason="Licence lapsed")

    response = client.get(reverse("patient_list"))
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)


def test_inactive_staff_cannot_post_login(client, password):
    user = UserFactory(is_staff=True, is_active=False)
    assert post_login(client, user.email, password).status_code == 200
    assert "_auth_user_id" not in client.session


def test_password_reset_by_email(client, prescriber, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the outbox row is sent after commit
        response = client.post(reverse("password_reset"), {"email": prescriber.user.email})
    assert response["Location"] == reverse("password_reset_done")
    (message,) = mail.outbox
    assert message.to == [prescriber.user.email]
    # Through the outbox like every email; once sent, the row keeps the subject, not the link.
    (delivery,) = Delivery.objects.all()
    assert delivery.kind == DeliveryKind.ACCOUNT
    assert delivery.recipient == prescriber.user.email
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.message == {"subject": message.subject}
    assert message.extra_headers["Message-ID"] == delivery.message_id
    link = re.search(r"https?://[^/]+(/accounts/reset/\S+/)", message.body).group(1)
    form_page = client.get(link, follow=True)
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "fresh-password-4411", "new_password2": "fresh-password-4411"},
    )
    assert done["Location"] == reverse("password_reset_complete")
    assert sign_in(client, prescriber.user.email, "fresh-password-4411")


def test_password_reset_does_not_reveal_unknown_addresses(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("password_reset"), {"email": "nobody@example.test"})
    assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []
    assert not Delivery.objects.exists()


def test_approved_prescriber_without_a_password_can_ask_for_a_link(
    client, django_capture_on_commit_callbacks
):
    # The approval email's link expired before they used it.
    prescriber = PrescriberFactory(user__password=None)
    assert not prescriber.user.has_usable_password()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("password_reset"), {"email": prescriber.user.email.upper()})

    assert [message.to for message in mail.outbox] == [[prescriber.user.email]]


@pytest.mark.parametrize("status", [PrescriberStatus.PENDING, PrescriberStatus.SUSPENDED])
def test_prescriber_who_may_not_sign_in_gets_no_reset_link(
    client, status, django_capture_on_commit_callbacks
):
    prescriber = PrescriberFactory(status=status)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("password_reset"), {"email": prescriber.user.email})
    assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []
    assert not Delivery.objects.exists()


def test_password_change(client, prescriber, password):
    client.force_login(prescriber.user)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": password,
            "new_password1": "changed-secret-8812",
            "new_password2": "changed-secret-8812",
        },
    )
    assert response["Location"] == reverse("password_change_done")
    prescriber.user.refresh_from_db()
    assert prescriber.user.check_password("changed-secret-8812")


def test_short_password_is_refused_with_a_message(client, prescriber, password):
    client.force_login(prescriber.user)
    response = client.post(
        reverse("password_change"),
        {"old_password": password, "new_password1": "short-1", "new_password2": "short-1"},
    )
    assert response.status_code == 200
    assert (
        "This password is too short. It must contain at least 12 characters."
        in (response.context["form"].errors["new_password2"])
    )
    prescriber.user.refresh_from_db()
    assert prescriber.user.check_password(password)


def test_logout_is_a_post(client, prescriber):
    client.force_login(prescriber.user)
    response = client.post(reverse("logout"))
    assert response["Location"] == LOGIN_URL
    assert "_auth_user_id" not in client.session


def test_staff_land_in_the_admin(client, pharmacist):
    client.force_login(pharmacist)
    response = client.get(reverse("home"))
    assert response["Location"] == reverse("admin:index")


def test_anonymous_home_asks_to_sign_in(client):
    response = client.get(reverse("home"))
    assert response["Location"] == f"{LOGIN_URL}?next=/"


def test_emails_are_unique_whatever_their_case(db):

    User.objects.create_user("Same@Example.test")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(email="SAME@example.test")
