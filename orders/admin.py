from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from .models import Patient


@admin.register(Patient)
class PatientAdmin(SimpleHistoryAdmin):
    list_display = ["__str__", "date_of_birth", "clinic", "takes_opioids", "created_at"]
    list_filter = ["takes_opioids", "sex"]
    list_select_related = ["clinic"]
    search_fields = ["last_name", "first_name", "clinic__name"]
    autocomplete_fields = ["clinic"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    fieldsets = (
        (None, {"fields": ("clinic", "first_name", "last_name", "date_of_birth", "sex", "phone")}),
        (
            "Shipping address",
            {"fields": ("address_line1", "address_line2", "city", "state", "postal_code")},
        ),
        ("Medical", {"fields": ("allergies", "current_medications", "takes_opioids")}),
        ("Record", {"fields": ("created_by", "created_at", "updated_at")}),
    )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
