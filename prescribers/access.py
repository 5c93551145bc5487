"""Who may use the portal: a signed-in member of a clinic (an approved prescriber, or clinic
staff), acting for one of their clinics at a time (chosen on the page, remembered)."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from core.portal_second_factor import second_factor_pending, verify_redirect

from .models import MembershipRole
from .selectors import acting_membership, pending_memberships, portal_memberships

# The session key of the clinic the person chose to act for.
ACTING_CLINIC = "acting_clinic"


class ClinicMemberRequiredMixin(LoginRequiredMixin):
    """Sets self.membership and self.clinic / self.clinic_id (the clinic acted for); pages
    filter every query by self.clinic_id. self.prescriber is the person's prescriber profile
    when they are a prescriber of that clinic, else None (clinic staff: they draft, and a
    prescriber signs). The request carries the memberships for the page's clinic switcher."""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if second_factor_pending(request):  # the authenticator app's code, after the password
            return verify_redirect(request)
        memberships = portal_memberships(request.user)
        membership = acting_membership(memberships, request.session.get(ACTING_CLINIC))
        if membership is None:
            asked = pending_memberships(request.user)
            if asked:  # waiting for a clinic's prescribers to accept them: say so
                return render(request, "prescribers/waiting.html", {"asked": asked}, status=403)
            raise PermissionDenied("The portal is for approved prescribers and their clinics.")
        self.membership = membership
        self.clinic = membership.clinic
        self.clinic_id = membership.clinic_id
        self.prescriber = None
        if membership.role == MembershipRole.PRESCRIBER:
            self.prescriber = request.user.portal_prescriber
        request.portal_memberships = memberships
        request.portal_membership = membership
        self.check_role()
        return super().dispatch(request, *args, **kwargs)

    def check_role(self) -> None:
        """Pages for one role refuse the other here."""


class PrescriberRequiredMixin(ClinicMemberRequiredMixin):
    """Pages only a prescriber of the clinic acted for opens (signing, the clinic's team)."""

    def check_role(self) -> None:
        if self.prescriber is None:
            raise PermissionDenied("Only a prescriber of this clinic may do this.")
