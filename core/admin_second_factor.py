"""The admin's second-factor pages (core/second_factor.py): enrolment, where a staff member
without an authenticator app scans a QR code (or types the key) and confirms with a first code,
and verification, where they enter the app's code after signing in with their password."""

import math

import django_otp
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe

from .forms import AuthenticatorCodeForm, SecondFactorCodeForm
from .second_factor import (
    CodeCheck,
    base32_secret,
    is_verified,
    qr_code_svg,
    recovery_code_check,
    recovery_codes_issue,
    totp_code_check,
    totp_device_enrol,
    totp_device_pk,
)


def verify(request, *, site):
    next_url = _next_url(request, site)
    if is_verified(request.user):
        return HttpResponseRedirect(next_url)
    device_pk = totp_device_pk(request.user)
    if device_pk is None:
        return site.second_factor_redirect(request, next_url)  # to enrolment
    form = SecondFactorCodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        if form.is_recovery_code:  # the phone is lost: one of the codes shown at enrolment
            check = recovery_code_check(actor=request.user, code=code)
        else:
            check = totp_code_check(actor=request.user, device_pk=device_pk, code=code)
        if check.accepted:
            return _verified(request, check, next_url)
        form.add_error("code", refusal(check))
    return _page(request, site, "verify", "Second factor", form, next_url)


def enrol(request, *, site):
    next_url = _next_url(request, site)
    if totp_device_pk(request.user) is not None:  # enrolled: never a second key this way
        return site.second_factor_redirect(request, next_url)  # to verification
    device = totp_device_enrol(actor=request.user)
    form = AuthenticatorCodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        check = totp_code_check(
            actor=request.user, device_pk=device.pk, code=form.cleaned_data["code"], enrolling=True
        )
        if check.accepted:
            second_factor_login(request, check.device)
            # Shown once: each signs in once instead of the app's code (a lost phone).
            codes = recovery_codes_issue(actor=request.user)
            return _page(request, site, "recovery_codes", "Your recovery codes", None, next_url,
                         codes=codes)  # fmt: skip
        form.add_error("code", refusal(check))
    return _page(
        request, site, "enrol", "Set up your authenticator app", form, next_url,
        qr_code=mark_safe(qr_code_svg(device)),  # segno's SVG: no text of the user's in it
        secret=base32_secret(device),
    )  # fmt: skip


def refusal(check: CodeCheck) -> str:
    wait = ""
    if check.retry_at is not None:
        seconds = math.ceil((check.retry_at - timezone.now()).total_seconds())
        if seconds > 0:
            wait = f" Wait {seconds} second{'s' if seconds != 1 else ''} before the next try."
    if check.throttled:
        return f"Too many wrong codes: this code was not checked.{wait}"
    return f"This code is not correct.{wait}"


def second_factor_login(request, device) -> None:
    """The session counts as verified by the device from now on, under a new session key."""
    request.session.cycle_key()
    django_otp.login(request, device)


def _verified(request, check: CodeCheck, next_url: str) -> HttpResponseRedirect:
    second_factor_login(request, check.device)
    return HttpResponseRedirect(next_url)


def safe_next_url(request, fallback: str) -> str:
    """Where the person was going ("next"): only a page of this site, else `fallback`."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


def _next_url(request, site) -> str:
    """Where the staff member was going, else the admin's index."""
    return safe_next_url(request, reverse("admin:index", current_app=site.name))


def _page(request, site, name, title, form, next_url, **context) -> TemplateResponse:
    return TemplateResponse(
        request,
        f"admin/second_factor/{name}.html",
        {
            **site.each_context(request),
            "title": title,
            "subtitle": None,
            "form": form,
            "next": next_url,
            **context,
        },
    )
