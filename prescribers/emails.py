"""Emails to prescribers about their account. Subjects carry no personal health information."""

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .models import Prescriber
from .models import PrescriberStatus as Status


def activation_url(user) -> str:
    """A one-time link to set a password: it stops working once the password is set."""
    path = reverse(
        "account_activate",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return settings.PORTAL_BASE_URL + path


def send_decision_email(*, prescriber: Prescriber, status: str) -> None:
    user = prescriber.user
    context = {
        "prescriber": prescriber,
        "pharmacy_name": settings.PHARMACY_NAME,
        "portal_url": settings.PORTAL_BASE_URL + reverse("home"),
        "note": prescriber.events.filter(to_status=status).values_list("note", flat=True).last(),
    }
    if status == Status.APPROVED:
        if user.has_usable_password():
            template = "reinstated"
        else:
            template = "approved"
            context["activation_url"] = activation_url(user)
    else:
        template = {Status.DECLINED: "declined", Status.SUSPENDED: "suspended"}[status]
    subject = render_to_string(f"emails/prescriber_{template}_subject.txt", context)
    body = render_to_string(f"emails/prescriber_{template}.txt", context)
    send_mail(" ".join(subject.split()), body, None, [user.email])


def send_already_registered_email(*, email: str) -> None:
    """To an address that applied again: the application page answers the same whether or not
    an address has an account, and the account's owner learns of it here instead."""
    context = {
        "pharmacy_name": settings.PHARMACY_NAME,
        "login_url": settings.PORTAL_BASE_URL + reverse("login"),
        "reset_url": settings.PORTAL_BASE_URL + reverse("password_reset"),
    }
    subject = render_to_string("emails/prescriber_already_registered_subject.txt", context)
    body = render_to_string("emails/prescriber_already_registered.txt", context)
    send_mail(" ".join(subject.split()), body, None, [email])


def send_staff_invitation_email(*, membership, inviter) -> None:
    """To a nurse or assistant a prescriber added to the clinic: a one-time link to set their
    password (or, when they have one already, a note that the clinic is on their account)."""
    user = membership.user
    context = {
        "membership": membership,
        "inviter": inviter.get_full_name() or inviter.email,
        "pharmacy_name": settings.PHARMACY_NAME,
        "login_url": settings.PORTAL_BASE_URL + reverse("login"),
        "activation_url": "" if user.has_usable_password() else activation_url(user),
    }
    subject = render_to_string("emails/staff_invited_subject.txt", context)
    body = render_to_string("emails/staff_invited.txt", context)
    send_mail(" ".join(subject.split()), body, None, [user.email])


def send_licence_expiry_email(*, licence) -> None:
    """To the prescriber whose state licence expires soon: renew it and tell the pharmacy."""
    prescriber = licence.prescriber
    context = {
        "licence": licence,
        "prescriber": prescriber,
        "pharmacy_name": settings.PHARMACY_NAME,
        "portal_url": settings.PORTAL_BASE_URL + reverse("home"),
    }
    subject = render_to_string("emails/licence_expiring_subject.txt", context)
    body = render_to_string("emails/licence_expiring.txt", context)
    send_mail(" ".join(subject.split()), body, None, [prescriber.user.email])
