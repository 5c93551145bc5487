from functools import partial

from django.contrib import admin
from django.db.models import Q
from django.urls import path
from django.utils.html import format_html

from pharmacy.admin import ReadOnlyInline, RecordHistoryAdmin
from pharmacy.roles import has_staff_role

from .admin_workflow import dispense_view, move_view, print_labels, rerender_view
from .models import (
    Order,
    OrderEvent,
    OrderStatus,
    Patient,
    Prescription,
    PrescriptionLine,
    PrescriptionStep,
)
from .workflow import allowed_moves


@admin.register(Patient)
class PatientAdmin(RecordHistoryAdmin):
    list_display = ["__str__", "date_of_birth", "clinic", "takes_opioids", "created_at"]
    list_filter = ["takes_opioids", "sex"]
    list_select_related = ["clinic"]
    search_fields = ["last_name", "first_name", "clinic__name"]
    show_full_result_count = False
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


class StepInline(ReadOnlyInline):
    model = PrescriptionStep
    fields = ["position", "dose_mg", "days"]
    readonly_fields = fields


class LineInline(ReadOnlyInline):
    model = PrescriptionLine
    fields = ["position", "formulation", "quantity"]
    readonly_fields = fields


class OrderInline(ReadOnlyInline):
    model = Order
    fields = ["number", "kind", "fill_number", "status", "created_at"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Prescription)
class PrescriptionAdmin(RecordHistoryAdmin):
    """Read-mostly for now: prescriptions change only through the prescriber's portal."""

    list_display = ["pk", "patient", "prescriber", "dosage_form", "days_supply",
                    "refills_authorized", "written_on", "expires_on"]  # fmt: skip
    list_filter = ["dosage_form", "written_on"]
    list_select_related = ["patient", "prescriber"]
    search_fields = ["patient__last_name", "patient__first_name", "prescriber__npi", "rx_number"]
    show_full_result_count = False
    inlines = [StepInline, LineInline, OrderInline]
    readonly_fields = [field.name for field in Prescription._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class EventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ["created_at", "actor", "from_status", "to_status", "note"]
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(RecordHistoryAdmin):
    change_form_template = "admin/orders/order/change_form.html"
    show_full_result_count = False

    class Media:
        css = {"all": ["css/admin.css"]}

    list_display = ["number", "patient", "clinic", "kind", "fill_number", "status_badge",
                    "needed_by", "created_at"]  # fmt: skip
    list_filter = ["status", "kind", "ship_to"]
    list_select_related = ["clinic", "prescription__patient"]
    # An order number (LDN-000123) is found by get_search_results; words search these.
    search_fields = [
        "prescription__patient__last_name", "prescription__patient__first_name",
        "prescription__prescriber__last_name", "prescription__prescriber__npi", "clinic__name",
        "prescription__rx_number", "dispenses__batch__lot_number",
    ]  # fmt: skip
    readonly_fields = [field.name for field in Order._meta.fields]
    inlines = [EventInline]
    ordering = ["created_at", "pk"]  # oldest first: the order they came in
    actions = [
        admin.action(description="Print labels of the selected orders (one PDF)")(print_labels)
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(ordering="prescription__patient__last_name")
    def patient(self, order):
        return order.prescription.patient

    def get_search_results(self, request, queryset, search_term):
        """An order number (LDN-000123) finds that order; other words search patient names."""
        pk = Order.pk_from_number(search_term)
        if pk is not None:  # digits alone may also be an Rx number
            return queryset.filter(Q(pk=pk) | Q(prescription__rx_number=search_term.strip())), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="status", ordering="status")
    def status_badge(self, order):
        return format_html(
            '<span class="order-status order-status-{}">{}</span>',
            order.status,
            order.get_status_display(),
        )

    def get_urls(self):
        move = self.admin_site.admin_view(partial(move_view, self))
        return [
            path("<path:object_id>/move/<str:to_status>/", move, name="orders_order_move"),
            path(
                "<path:object_id>/label/",
                self.admin_site.admin_view(partial(rerender_view, self)),
                name="orders_order_rerender_label",
            ),
            path(
                "<path:object_id>/dispense/",
                self.admin_site.admin_view(partial(dispense_view, self)),
                name="orders_order_dispense",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = self.get_object(request, object_id)
        if order is not None:
            prescription = order.prescription
            extra_context = {
                **(extra_context or {}),
                "moves": allowed_moves(request.user, order),
                "prescription": prescription,
                "steps": prescription.steps.all(),
                "lines": prescription.lines.select_related("formulation"),
                "findings": prescription.findings,
                "events": order.events.select_related("actor"),
                "dispenses": order.dispenses.select_related("batch", "line__formulation"),
                "labels": order.labels.all(),
                "deliveries": order.deliveries.all(),
                "may_dispense": order.status in (OrderStatus.VERIFIED, OrderStatus.COMPOUNDING)
                and has_staff_role(request.user, {"pharmacist", "technician"}),
            }
        return super().change_view(request, object_id, form_url, extra_context)
