"""Who may use the prescriber portal: a signed-in, approved prescriber, for their own clinic."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied


class PrescriberRequiredMixin(LoginRequiredMixin):
    """Sets self.prescriber; pages filter every query by self.prescriber.clinic_id."""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        prescriber = request.user.portal_prescriber
        if prescriber is None or not prescriber.is_approved:
            raise PermissionDenied("The portal is for approved prescribers.")
        self.prescriber = prescriber
        return super().dispatch(request, *args, **kwargs)
