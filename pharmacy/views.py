"""The pharmacy's pages outside the admin: the clinic's dashboard with the pharmacy's recall
notices, the notices themselves, the label of an order for its prescriber, and the health
check."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.views import View
from django.views.decorators.http import require_GET
from django.views.generic import DetailView, ListView

from core.audit import record_access, record_when_shown
from core.models import AccessAction
from core.sessions import PATIENT
from core.sessions import ROLE as SESSION_ROLE
from orders.order_views import ClinicOrdersMixin
from orders.views import DashboardView
from prescribers.access import ClinicMemberRequiredMixin

from .recalls import recall_notice_acknowledge
from .selectors import clinic_recall_notices, latest_label, recall_notice_dispenses, work_health

DASHBOARD_NOTICES = 10


def home(request):
    """Prescribers and clinic staff land on their dashboard, patients on their own page; the
    pharmacy works in the admin."""
    user = request.user
    if user.is_authenticated and user.portal_prescriber is None and user.is_staff:
        return redirect("admin:index")
    if user.is_authenticated and request.session.get(SESSION_ROLE) == PATIENT:
        return redirect("patient_home")
    return InboxView.as_view()(request)


class InboxView(DashboardView):
    """The dashboard, led by the recalls the clinic has not yet confirmed telling its patients
    about."""

    template_name = "pharmacy/home.html"

    def get_context_data(self, **kwargs):
        notices = clinic_recall_notices(self.clinic_id).filter(acknowledged_at__isnull=True)
        return super().get_context_data(recall_notices=notices[:DASHBOARD_NOTICES], **kwargs)


class RecallNoticesMixin(ClinicMemberRequiredMixin):
    def get_queryset(self):
        # Another clinic's notice is a 404.
        return clinic_recall_notices(self.clinic_id)


class RecallNoticeListView(RecallNoticesMixin, ListView):
    template_name = "pharmacy/recall_notice_list.html"
    context_object_name = "notices"
    paginate_by = 25


class RecallNoticeDetailView(RecallNoticesMixin, DetailView):
    """What the recall reaches in this clinic (its patients, by order), and the confirmation
    that they were told. Seeing it is an access event on the recall, as in the admin: the
    patient's access history lists it."""

    template_name = "pharmacy/recall_notice_detail.html"
    context_object_name = "notice"

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        record_when_shown(request, response, AccessAction.VIEWED_RECALL, self.object.recall)
        return response

    def get_context_data(self, **kwargs):
        return super().get_context_data(dispenses=recall_notice_dispenses(self.object), **kwargs)

    def post(self, request, pk):
        notice = get_object_or_404(self.get_queryset(), pk=pk)
        try:
            confirmed = recall_notice_acknowledge(notice=notice, actor=request.user)
        except PermissionDenied as refused:
            messages.error(request, str(refused))
        else:
            if confirmed.acknowledged_by_id == request.user.pk:
                messages.success(request, "Thank you: the pharmacy sees that your clinic has "
                                 "told its patients.")  # fmt: skip
            else:
                messages.info(request, f"{confirmed.acknowledged_by.get_full_name()} already "
                              f"confirmed this notice.")  # fmt: skip
        return redirect("recall_notice_detail", pk)


class OrderLabelView(ClinicOrdersMixin, View):
    """The latest label PDF of an order of the prescriber's clinic."""

    def get(self, request, pk):
        order = get_object_or_404(self.orders(), pk=pk)
        document = latest_label(order)
        if document is None:
            raise Http404("No label yet.")
        response = FileResponse(
            document.file.open("rb"),
            as_attachment=True,
            filename=f"label-{order.number}.pdf",
            content_type="application/pdf",
        )
        record_access(request, AccessAction.DOWNLOADED_LABEL, document)
        return response


@require_GET
def health(request):
    """For the load balancer and the monitoring: 200 with the counts of waiting and failed work
    (emails, print jobs) while the database answers, 503 when it does not. Failed work is
    counted, not hidden: a person retries it from the admin. Counts only, nothing about anyone."""
    try:
        work = work_health()
    except DatabaseError:
        return JsonResponse({"database": "unreachable"}, status=503)
    return JsonResponse({"database": "ok", **work})
