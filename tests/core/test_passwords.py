"""Passwords: hashed with Argon2 (older hashes upgraded at sign-in), at least 12 characters and not
a common one wherever a password is chosen, and a reset that does not tell who has an account."""

import datetime

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from config import settings as portal_settings
from core.models import PasswordResetRequest, User
from prescribers.models import PrescriberStatus
from tests.factories import PrescriberFactory, StaffFactory
from tests.signing_in import sign_in, verified_staff_login

pytestmark = pytest.mark.django_db

REFUSED_PASSWORDS = [
    pytest.param(
        "Vq7-short", "This password is too short. It must contain at least 12 characters.",
        id="short",
    ),
    pytest.param("qwerty123456", "This password is too common.", id="common"),
]  # fmt: skip


def test_a_pbkdf2_password_becomes_argon2_at_sign_in(settings, client):
    # The production list (the tests otherwise hash with MD5 for speed).
    settings.PASSWORD_HASHERS = portal_settings.PASSWORD_HASHERS
    prescriber = PrescriberFactory()
    user = prescriber.user
    user.password = make_password("an-older-secret-531", hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])

    assert sign_in(client, user.email, "an-older-secret-531")

    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")
    assert user.check_password("an-older-secret-531")


def link_path(view_name, user):
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse(view_name, args=[uid, default_token_generator.make_token(user)])


def choose_password(client, view_name, user, new_password):
    """Open the emailed link (the view swaps the token for a session) and post the form."""
    form_page = client.get(link_path(view_name, user), follow=True)
    assert form_page.context["validlink"] is True
    return client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": new_password, "new_password2": new_password},
    )


@pytest.mark.parametrize(("new_password", "message"), REFUSED_PASSWORDS)
def test_account_activation_refuses_a_weak_password(client, new_password, message):
    user = PrescriberFactory(user__password=None).user
    user.set_unusable_password()
    user.save()

    response = choose_password(client, "account_activate", user, new_password)

    assert response.status_code == 200
    assert message in response.context["form"].errors["new_password2"]
    user.refresh_from_db()
    assert not user.has_usable_password()


@pytest.mark.parametrize(("new_password", "message"), REFUSED_PASSWORDS)
def test_password_reset_refuses_a_weak_password(client, prescriber, password, new_password,
                                                message):  # fmt: skip
    response = choose_password(client, "password_reset_confirm", prescriber.user, new_password)

    assert response.status_code == 200
    assert message in response.context["form"].errors["new_password2"]
    prescriber.user.refresh_from_db()
    assert prescriber.user.check_password(password)


def test_account_activation_takes_a_strong_password(client):
    # The same form with a good password: the refusals above come from the validators.
    user = PrescriberFactory(user__password=None).user
    response = choose_password(client, "account_activate", user, "a-long-new-secret-42")
    assert response["Location"] == reverse("login")
    user.refresh_from_db()
    assert user.check_password("a-long-new-secret-42")


@pytest.mark.parametrize(("new_password", "message"), REFUSED_PASSWORDS)
def test_admin_add_user_refuses_a_weak_password(client, new_password, message):
    verified_staff_login(client, StaffFactory(is_superuser=True))
    users_before = User.objects.count()

    response = client.post(
        reverse("admin:core_user_add"),
        {"email": "new.tech@pharmacy.test", "first_name": "New", "last_name": "Tech",
         "password1": new_password, "password2": new_password},
    )  # fmt: skip

    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors["password2"]
    assert User.objects.count() == users_before
    assert not User.objects.filter(email="new.tech@pharmacy.test").exists()


def test_admin_add_user_takes_a_strong_password(client):
    verified_staff_login(client, StaffFactory(is_superuser=True))
    response = client.post(
        reverse("admin:core_user_add"),
        {"email": "new.tech@pharmacy.test", "first_name": "New", "last_name": "Tech",
         "password1": "a-long-new-secret-42", "password2": "a-long-new-secret-42"},
    )  # fmt: skip
    assert response.status_code == 302
    assert User.objects.get(email="new.tech@pharmacy.test").check_password("a-long-new-secret-42")


def test_password_reset_answers_the_same_whether_or_not_there_is_an_account(
    client, django_capture_on_commit_callbacks
):
    known = PrescriberFactory().user.email
    suspended = PrescriberFactory(status=PrescriberStatus.SUSPENDED).user.email
    answers = {}
    for email in (known, "nobody@example.test", suspended):
        sent_before = len(mail.outbox)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("password_reset"), {"email": email})
        done_page = client.get(response["Location"])
        answers[email] = (
            response.status_code,
            response["Location"],
            response.content,
            done_page.status_code,
            done_page.content,
            len(mail.outbox) - sent_before,
        )

    assert answers[known][:5] == answers["nobody@example.test"][:5] == answers[suspended][:5]
    assert answers[known][:2] == (302, reverse("password_reset_done"))
    # Only the account that may sign in gets an email.
    assert [answers[email][5] for email in answers] == [1, 0, 0]
    assert [message.to for message in mail.outbox] == [[known]]


def test_a_flood_of_resets_sends_a_few_emails_an_hour_and_answers_the_same(
    client, clock, settings, django_capture_on_commit_callbacks
):
    settings.PASSWORD_RESET_EMAILS_PER_HOUR = 3
    known = PrescriberFactory().user.email
    answers = set()
    with django_capture_on_commit_callbacks(execute=True):
        for email in [known] * 60 + ["nobody@example.test"] * 60:
            response = client.post(reverse("password_reset"), {"email": email})
            answers.add((response.status_code, response["Location"]))
    assert answers == {(302, reverse("password_reset_done"))}
    assert [message.to for message in mail.outbox] == [[known]] * 3
    # Every request is a row, for an account or none, and no row names the address.
    assert PasswordResetRequest.objects.count() == 120
    assert not PasswordResetRequest.objects.filter(address_key__icontains="@").exists()

    clock.shift(datetime.timedelta(minutes=61))  # an hour later, three more may go
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            client.post(reverse("password_reset"), {"email": known.upper()})
    assert len(mail.outbox) == 6
