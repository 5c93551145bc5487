from core.admin_site import PortalAdminSite

from .workbench import licence_queues, work_queues


class PharmacyAdminSite(PortalAdminSite):
    """The staff's admin, whose index starts with the order work queues."""

    index_title = "Pharmacy operations"
    index_template = "admin/pharmacy_index.html"

    def index(self, request, extra_context=None):
        queues = work_queues() if request.user.has_perm("orders.view_order") else []
        if request.user.has_perm("prescribers.view_licence"):
            queues += licence_queues()
        return super().index(request, {**(extra_context or {}), "work_queues": queues})
