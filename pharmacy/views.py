"""The pharmacy's pages on the prescriber's side of the portal: the label of an order."""

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.views import View

from core.audit import record_access
from core.models import AccessAction
from orders.order_views import ClinicOrdersMixin

from .selectors import latest_label


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
