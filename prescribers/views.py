from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_http_methods

from .forms import ClinicForm, PrescriberApplicationForm
from .services import prescriber_apply


@require_http_methods(["GET", "POST"])
def apply(request):
    """The public application for a prescriber account."""
    data = request.POST if request.method == "POST" else None
    prescriber_form = PrescriberApplicationForm(data)
    clinic_form = ClinicForm(data)
    # `&`, not `and`: validate both forms so that every message shows at once.
    if data is not None and prescriber_form.is_valid() & clinic_form.is_valid():
        try:
            prescriber_apply(
                prescriber=prescriber_form.instance,
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
        {"prescriber_form": prescriber_form, "clinic_form": clinic_form},
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
