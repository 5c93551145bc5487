"""The pharmacy's pages outside the admin: the label of an order for its prescriber, and the
health check."""

from django.db import DatabaseError
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.views import View
from django.views.decorators.http import require_GET

from core.audit import record_access
from core.models import AccessAction
from orders.order_views import ClinicOrdersMixin

from .selectors import latest_label, work_health


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
