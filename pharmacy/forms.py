from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .models import User, normalize_email_address


class LoginForm(AuthenticationForm):
    """Django's login form (fields username and password), with the email as the username."""

    username = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Please enter a correct email and password. Accounts still awaiting "
        "the pharmacy's approval, or suspended, cannot sign in.",
    }


class PortalPasswordResetForm(PasswordResetForm):
    """Django's reset form, but it also serves an approved prescriber who never set a password
    (the one-time link from the approval email expired), and skips accounts that may not sign
    in. The page says the same whether or not an account was found, and answers as fast:
    the email is made and sent by a worker (pharmacy.tasks.send_password_reset), never during
    the request, so the time an SMTP conversation takes does not tell that an account exists.
    The link's token is made in the worker too: it never passes through the broker."""

    def get_users(self, email):
        users = User.objects.filter(email=normalize_email_address(email), is_active=True)
        for user in users.select_related("prescriber"):
            if user.may_sign_in and (user.has_usable_password() or user.portal_prescriber):
                yield user

    def send_mail(self, subject_template_name, email_template_name, context, *args, **kwargs):
        from .tasks import send_password_reset  # tasks import this module

        send_password_reset.delay(user_id=context["user"].pk)


def send_password_reset_email(user) -> None:
    """The password reset email of Django's form, with the portal's address in the link."""
    protocol, _, domain = settings.PORTAL_BASE_URL.partition("://")
    context = {
        "email": user.email, "user": user, "domain": domain, "protocol": protocol,
        "site_name": settings.PHARMACY_NAME,
        "uid": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user),
    }  # fmt: skip
    PasswordResetForm().send_mail(
        "registration/password_reset_subject.txt", "registration/password_reset_email.html",
        context, None, user.email,
    )  # fmt: skip


class AuthenticatorCodeForm(forms.Form):
    """The six-digit code an authenticator app shows ("123 456", as some apps show it, too)."""

    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=7,
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "one-time-code", "inputmode": "numeric"}
        ),
    )

    def clean_code(self):
        code = "".join(self.cleaned_data["code"].split())
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise forms.ValidationError(
                "Enter the 6 digits your authenticator app shows.", code="invalid"
            )
        return code
