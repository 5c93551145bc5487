import datetime

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.db import transaction
from django.utils import timezone

from .models import PasswordResetRequest, User, normalize_email_address
from .second_factor import RECOVERY_CODE_LENGTH

# Requests older than this are of no use to the hourly limit and are deleted.
RESET_REQUESTS_KEPT = datetime.timedelta(days=1)


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


def within_email_limit(email: str) -> bool:
    """Records a request for a sign-in email (a password reset, a patient's sign-in link) to an
    address, whatever the address: the same work for an account and for none. Whether this one
    is within PASSWORD_RESET_EMAILS_PER_HOUR of them an hour."""
    key = PasswordResetRequest.key_of(email)
    now = timezone.now()
    with transaction.atomic():
        PasswordResetRequest.objects.filter(created_at__lt=now - RESET_REQUESTS_KEPT).delete()
        sent = PasswordResetRequest.objects.filter(
            address_key=key,
            within_limit=True,
            created_at__gte=now - datetime.timedelta(hours=1),
        ).count()
        within = sent < settings.PASSWORD_RESET_EMAILS_PER_HOUR
        PasswordResetRequest.objects.create(address_key=key, within_limit=within)
    return within


class PortalPasswordResetForm(PasswordResetForm):
    """Django's reset form, but it also serves an approved prescriber who never set a password
    (the one-time link from the approval email expired), and skips accounts that may not sign
    in. The page says the same whether or not an account was found. The email goes through
    Django's mail API, which is the outbox (settings.EMAIL_BACKEND): the request writes a row
    and a worker sends it, so no SMTP conversation's time tells that an account exists. The
    link is in the outbox row until the email is sent, never in the broker."""

    def get_users(self, email):
        users = User.objects.filter(email=normalize_email_address(email), is_active=True)
        for user in users.select_related("prescriber"):
            if user.may_sign_in and (user.has_usable_password() or user.portal_prescriber):
                yield user

    def save(self, *args, **kwargs):
        """Every request is a row, whatever the address (the same work for an account and for
        none); at most PASSWORD_RESET_EMAILS_PER_HOUR reset emails go to one address an hour.
        The link points at the portal's address (PORTAL_BASE_URL), not at whatever host the
        request named."""
        if not within_email_limit(self.cleaned_data["email"]):
            return
        protocol, _, domain = settings.PORTAL_BASE_URL.partition("://")
        context = {**(kwargs.get("extra_email_context") or {}), "site_name": settings.PHARMACY_NAME}
        kwargs.update(
            domain_override=domain, use_https=protocol == "https", extra_email_context=context
        )
        return super().save(*args, **kwargs)


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


class SecondFactorCodeForm(forms.Form):
    """After the password: the authenticator app's six digits, or one of the recovery codes
    (eight letters and digits, each accepted once) when the phone is not at hand."""

    code = forms.CharField(
        label="Code from your authenticator app, or a recovery code",
        max_length=20,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "one-time-code"}),
    )

    def clean_code(self):
        code = "".join(self.cleaned_data["code"].split()).lower()
        if code.isascii() and code.isdigit() and len(code) == 6:
            return code
        if code.isascii() and code.isalnum() and len(code) == RECOVERY_CODE_LENGTH:
            return code
        raise forms.ValidationError(
            "Enter the 6 digits your authenticator app shows, or one of your recovery codes.",
            code="invalid",
        )

    @property
    def is_recovery_code(self) -> bool:
        return len(self.cleaned_data["code"]) == RECOVERY_CODE_LENGTH


class DateField(forms.DateField):
    """A date typed in ordinary digits: Python would read full-width or other scripts' digits
    (full-width "2026", say) as a date, which no one means and no record should keep."""

    def to_python(self, value):
        if isinstance(value, str) and not value.isascii():
            raise forms.ValidationError("Enter the date in ordinary digits (0-9).", code="invalid")
        return super().to_python(value)


class LinesField(forms.CharField):
    """A list of short texts typed one per line (a JSON list in the database): blank lines are
    dropped, each line is trimmed, and at most `max_lines` of at most `line_length` characters
    are kept."""

    widget = forms.Textarea(attrs={"rows": 4})

    def __init__(self, *, max_lines: int, line_length: int, **kwargs):
        self.max_lines, self.line_length = max_lines, line_length
        kwargs.setdefault("help_text", f"One per line (at most {max_lines}).")
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return list(value)
        text = super().to_python(value) or ""
        return [line.strip() for line in text.splitlines() if line.strip()]

    def validate(self, value):
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if len(value) > self.max_lines:
            raise forms.ValidationError(
                f"At most {self.max_lines} lines (this has {len(value)}).", code="too_many_lines"
            )
        for number, line in enumerate(value, start=1):
            if len(line) > self.line_length:
                raise forms.ValidationError(
                    f"Line {number} is {len(line)} characters long: at most {self.line_length}.",
                    code="line_too_long",
                )

    def has_changed(self, initial, data):
        return self.to_python(initial or []) != self.to_python(data)
