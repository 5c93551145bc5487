"""The portal's second factor (core/second_factor.py): a prescriber or a clinic's staff member
may turn on an authenticator app; once on, every portal page asks for its code (or a one-time
recovery code) after the password, and the recovery codes let them in when the phone is lost,
so that they can set up a new one without an administrator."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from .admin_second_factor import refusal, safe_next_url, second_factor_login
from .forms import AuthenticatorCodeForm, SecondFactorCodeForm
from .second_factor import (
    base32_secret,
    is_verified,
    qr_code_svg,
    recovery_code_check,
    recovery_codes_issue,
    recovery_codes_left,
    second_factor_remove,
    totp_code_check,
    totp_device_enrol,
    totp_device_pk,
)


class PasswordAgainForm(forms.Form):
    """A change to the second factor is confirmed with the password."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("The password is not correct.", code="bad_password")
        return password


def second_factor_pending(request) -> bool:
    """A signed-in person of the portal with an authenticator app who has not given its code
    this session (the pharmacy's staff give theirs to the admin, core/admin_site.py)."""
    user = request.user
    if not user.is_authenticated or user.is_staff or totp_device_pk(user) is None:
        return False
    return not is_verified(user)


def verify_redirect(request) -> HttpResponseRedirect:
    query = urlencode({"next": request.get_full_path()})
    return redirect(f"{reverse('second_factor_verify')}?{query}")


@login_required
@require_http_methods(["GET", "POST"])
def verify(request):
    """After the password: the app's code, or one recovery code."""
    going_to = safe_next_url(request, reverse("home"))
    if not second_factor_pending(request):
        return HttpResponseRedirect(going_to)
    form = SecondFactorCodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        if form.is_recovery_code:
            check = recovery_code_check(actor=request.user, code=code)
        else:
            device_pk = totp_device_pk(request.user)
            check = totp_code_check(actor=request.user, device_pk=device_pk, code=code)
        if check.accepted:
            second_factor_login(request, check.device)
            if form.is_recovery_code:
                left = recovery_codes_left(request.user)
                messages.warning(
                    request,
                    f"You signed in with a recovery code; {left} left. Lost your phone? Set up "
                    "the app again under Security.",
                )
            return HttpResponseRedirect(going_to)
        form.add_error("code", refusal(check))
    context = {"form": form, "next": going_to}
    return render(request, "registration/second_factor_verify.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def security(request):
    """The person's second factor: turn the app on, get new recovery codes, turn it off."""
    if request.user.is_staff:
        return redirect("admin:index")  # the pharmacy's staff always have it, in the admin
    if second_factor_pending(request):
        return verify_redirect(request)
    has_app = totp_device_pk(request.user) is not None
    form = PasswordAgainForm(request.POST or None, user=request.user)
    if request.method == "POST" and has_app and form.is_valid():
        if request.POST.get("action") == "turn_off":
            second_factor_remove(actor=request.user)
            messages.success(
                request, "The authenticator app is off: sign-in asks for your password only."
            )
            return redirect("security")
        codes = recovery_codes_issue(actor=request.user)
        return render(request, "registration/recovery_codes.html", {"codes": codes})
    return render(
        request,
        "registration/security.html",
        {"has_app": has_app, "form": form, "codes_left": recovery_codes_left(request.user)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def security_app(request):
    """Turning the app on: scan the QR code (or type the key), confirm with a first code; the
    recovery codes are shown once."""
    if request.user.is_staff:
        return redirect("admin:index")
    if totp_device_pk(request.user) is not None:
        return redirect("security")
    device = totp_device_enrol(actor=request.user)
    form = AuthenticatorCodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        check = totp_code_check(actor=request.user, device_pk=device.pk, code=code, enrolling=True)
        if check.accepted:
            second_factor_login(request, check.device)
            codes = recovery_codes_issue(actor=request.user)
            return render(
                request, "registration/recovery_codes.html", {"codes": codes, "new": True}
            )
        form.add_error("code", refusal(check))
    return render(
        request,
        "registration/security_app.html",
        {"form": form, "qr_code": mark_safe(qr_code_svg(device)), "secret": base32_secret(device)},
    )
