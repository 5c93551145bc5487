"""The partner API's resources of the pharmacy: an order's label PDF."""

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.views import APIView

from core.api import KnownQueryParameters
from core.audit import record_access
from core.models import AccessAction
from orders.models import Order

from .selectors import latest_label


class OrderLabelView(KnownQueryParameters, APIView):
    """The latest label PDF of an order of the key's clinic (404 until the pharmacy has
    rendered it: the `label_ready` webhook says when)."""

    def perform_content_negotiation(self, request, force=False):
        # A client asking for PDF gets it; an error is then a JSON problem, not a 406.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="The order's label (PDF)", responses={(200, "application/pdf"): OpenApiTypes.BINARY}
    )
    def get(self, request, pk):
        order = get_object_or_404(Order.objects.of_clinic(request.auth.clinic_id), pk=pk)
        document = latest_label(order)
        if document is None:
            raise NotFound("The pharmacy has not printed this order's label yet.")
        response = FileResponse(
            document.file.open("rb"), as_attachment=True,
            filename=f"label-{order.number}.pdf", content_type="application/pdf",
        )  # fmt: skip
        record_access(request, AccessAction.DOWNLOADED_LABEL, document)
        return response
