from django.conf import settings
from django.contrib import admin


class PharmacyAdminSite(admin.AdminSite):
    """The staff's admin, whose index starts with the order work queues."""

    site_header = f"{settings.PHARMACY_NAME}: pharmacy"
    site_title = "LDN pharmacy admin"
    index_title = "Pharmacy operations"
    index_template = "admin/pharmacy_index.html"

    def index(self, request, extra_context=None):
        from orders.admin_workflow import work_queues

        queues = work_queues() if request.user.has_perm("orders.view_order") else []
        return super().index(request, {**(extra_context or {}), "work_queues": queues})
