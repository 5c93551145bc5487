"""Who may use the prescriber portal: a signed-in, approved prescriber, acting for one of their
clinics at a time (chosen on the page, remembered)."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied

from .selectors import acting_membership, prescriber_memberships

# The session key of the clinic the person chose to act for.
ACTING_CLINIC = "acting_clinic"


class PrescriberRequiredMixin(LoginRequiredMixin):
    """Sets self.prescriber, self.membership and self.clinic / self.clinic_id (the clinic acted
    for); pages filter every query by self.clinic_id. The request carries the person's
    memberships for the page's clinic switcher."""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        prescriber = request.user.portal_prescriber
        if prescriber is None or not prescriber.is_approved:
            raise PermissionDenied("The portal is for approved prescribers.")
        memberships = prescriber_memberships(request.user)
        membership = acting_membership(memberships, request.session.get(ACTING_CLINIC))
        if membership is None:
            raise PermissionDenied("Your account does not belong to a clinic.")
        self.prescriber = prescriber
        self.membership = membership
        self.clinic = membership.clinic
        self.clinic_id = membership.clinic_id
        request.portal_memberships = memberships
        request.portal_membership = membership
        return super().dispatch(request, *args, **kwargs)
