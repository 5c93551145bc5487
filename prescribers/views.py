from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views import View
from django.views.decorators.http import require_http_methods

from .access import ACTING_CLINIC, PrescriberRequiredMixin
from .forms import ClinicForm, LicenceForm, PrescriberApplicationForm
from .services import membership_act_for, prescriber_apply


@require_http_methods(["GET", "POST"])
def apply(request):
    """The public application for a prescriber account."""
    data = request.POST if request.method == "POST" else None
    prescriber_form = PrescriberApplicationForm(data)
    licence_form = LicenceForm(data)
    clinic_form = ClinicForm(data)
    # `&`, not `and`: validate every form so that every message shows at once.
    valid = prescriber_form.is_valid() & licence_form.is_valid() & clinic_form.is_valid()
    if data is not None and valid:
        try:
            prescriber_apply(
                prescriber=prescriber_form.instance,
                licence=licence_form.instance,
                clinic=clinic_form.instance,
                email=prescriber_form.cleaned_data["email"],
            )
        except ValidationError as exc:
            for field, errors in exc.error_dict.items():
                prescriber_form.add_error(field, errors)
        else:
            return redirect("prescriber_apply_done")
    return render(
        request,
        "prescribers/apply.html",
        {
            "prescriber_form": prescriber_form,
            "licence_form": licence_form,
            "clinic_form": clinic_form,
        },
    )


def apply_done(request):
    return render(request, "prescribers/apply_done.html")


class AccountActivateView(auth_views.PasswordResetConfirmView):
    """The one-time link from the approval email: the prescriber chooses a password."""

    template_name = "registration/account_activate.html"
    success_url = reverse_lazy("login")

    def form_valid(self, form):
        response = super().form_valid(form)
        messages.success(self.request, "Your password is set. Sign in with your email address.")
        return response


class ClinicSwitchView(PrescriberRequiredMixin, View):
    """A prescriber of several clinics chooses the one they act for: every page, search and
    list then shows that clinic's patients and orders only. Remembered for the session and for
    the next sign-in."""

    http_method_names = ["post"]

    def post(self, request):
        chosen = request.POST.get("clinic", "")
        membership = next(
            (m for m in request.portal_memberships if str(m.clinic_id) == chosen), None
        )
        if membership is None:
            messages.error(request, "Choose one of your clinics.")
            return redirect("home")
        membership_act_for(membership=membership, actor=request.user)
        request.session[ACTING_CLINIC] = membership.clinic_id
        messages.success(request, f"You are working for {membership.clinic}.")
        return redirect("home")
