from core.admin_site import PortalAdminSite

from .dashboard import dashboard_cached
from .workbench import licence_queues, work_queues


class PharmacyAdminSite(PortalAdminSite):
    """The staff's admin, whose index starts with the order work queues."""

    index_title = "Pharmacy operations"
    index_template = "admin/pharmacy_index.html"

    def index(self, request, extra_context=None):
        sees_orders = request.user.has_perm("orders.view_order")
        queues = work_queues() if sees_orders else []
        if request.user.has_perm("prescribers.view_licence"):
            queues += licence_queues()
        context = {"work_queues": queues, "dashboard": dashboard_cached() if sees_orders else None}
        return super().index(request, {**(extra_context or {}), **context})
