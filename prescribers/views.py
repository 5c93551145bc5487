from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views import View
from django.views.decorators.http import require_http_methods
from django.views.generic import FormView

from core.state_machine import refusal_text

from .access import ACTING_CLINIC, ClinicMemberRequiredMixin, PrescriberRequiredMixin
from .forms import ClinicForm, LicenceForm, PrescriberApplicationForm, StaffInviteForm
from .models import MembershipRole, MembershipStatus
from .selectors import clinic_members
from .services import (
    membership_accept,
    membership_act_for,
    membership_end,
    membership_invite_staff,
    prescriber_apply,
)


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


class ClinicSwitchView(ClinicMemberRequiredMixin, View):
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


class ClinicTeamView(PrescriberRequiredMixin, FormView):
    """The clinic's people: its prescribers and its staff; a prescriber adds a nurse or
    assistant (who drafts orders for a prescriber to sign) or ends their place here."""

    form_class = StaffInviteForm
    template_name = "prescribers/team.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(members=clinic_members(self.clinic_id), **kwargs)

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            membership = membership_invite_staff(
                clinic=self.clinic, email=data["email"], first_name=data["first_name"],
                last_name=data["last_name"], actor=self.request.user,
            )  # fmt: skip
        except ValidationError as refused:
            for field, errors in refused.error_dict.items():
                form.add_error(field, errors)
            return self.form_invalid(form)
        messages.success(
            self.request, f"{membership.user.email} is invited: an email with a link is on its way."
        )
        return redirect("clinic_team")


class MembershipDecisionView(PrescriberRequiredMixin, View):
    """A prescriber's decision on a member of the clinic (the members it applies to, the
    service that makes it, and what it says when done)."""

    http_method_names = ["post"]

    def members(self):
        raise NotImplementedError

    def decide(self, membership, actor):
        raise NotImplementedError

    done = ""

    def post(self, request, pk):
        membership = get_object_or_404(self.members(), pk=pk)
        try:
            self.decide(membership, request.user)
        except ValidationError as refused:
            messages.error(request, refusal_text(refused))
        else:
            messages.success(request, self.done.format(user=membership.user, clinic=self.clinic))
        return redirect("clinic_team")


class MembershipEndView(MembershipDecisionView):
    """Ends a staff member's place in the clinic, or declines someone who asked to join."""

    done = "{user} does not work for {clinic}."

    def members(self):
        return clinic_members(self.clinic_id).filter(
            Q(role=MembershipRole.STAFF) | Q(status=MembershipStatus.PENDING)
        )

    def decide(self, membership, actor):
        membership_end(membership=membership, actor=actor)


class MembershipAcceptView(MembershipDecisionView):
    """Accepts someone who asked to join the clinic."""

    done = "{user} now works for {clinic}."

    def members(self):
        return clinic_members(self.clinic_id).filter(status=MembershipStatus.PENDING)

    def decide(self, membership, actor):
        membership_accept(membership=membership, actor=actor)
