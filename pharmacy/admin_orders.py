from decimal import Decimal
from functools import partial

from django import forms
from django.contrib import admin
from django.db.models import OuterRef
from django.urls import path, reverse
from django.utils.html import format_html

from core.admin import ReadOnlyInline, RecordHistoryAdmin
from core.json_rows import instances, json_rows
from core.models import AccessAction
from core.pagination import EstimatedCountPaginator
from core.roles import STAFF, has_staff_role
from orders.forms import ConditionsField
from orders.models import (
    DISPENSABLE_STATUSES,
    Order,
    OrderEvent,
    OrderQuantity,
    Patient,
    Prescription,
    PrescriptionLine,
    PrescriptionStep,
)
from orders.workflow import allowed_moves
from prescribers.models import PrescriberStatus

from .admin_audit import VIEW_ACCESS_EVENTS, RecordsAccessAdmin
from .models import Delivery, DeliveryKind, DeliveryStatus, Dispense, LabelDocument
from .selectors import order_summary
from .workbench import (
    dispense_view,
    label_download_view,
    move_view,
    print_labels,
    rerender_view,
)


def _fully_dispensed(lines, dispenses) -> bool:
    """Whether every line got its units (from the rows the page read anyway)."""
    given: dict[int, Decimal] = {}
    for dispense in dispenses:
        given[dispense.line_id] = given.get(dispense.line_id, Decimal(0)) + dispense.units
    return all(given.get(line.pk, Decimal(0)) >= line.units for line in lines)


class PatientAdminForm(forms.ModelForm):
    conditions = ConditionsField()

    class Meta:
        model = Patient
        fields = ("clinic", *Patient.EDITABLE_FIELDS)


class PatientAdmin(RecordsAccessAdmin, RecordHistoryAdmin):
    form = PatientAdminForm
    access_action = AccessAction.VIEWED_PATIENT
    change_form_template = "admin/orders/patient/change_form.html"
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
        (
            "Medical",
            {
                "fields": (
                    "allergies",
                    "current_medications",
                    "takes_opioids",
                    "conditions",
                    "pregnant_or_breastfeeding",
                    "liver_disease",
                )
            },
        ),
        ("Record", {"fields": ("created_by", "created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        # The change page shows the clinic and who made the record: read with the patient.
        return super().get_queryset(request).select_related("clinic", "created_by")

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.user.has_perm(VIEW_ACCESS_EVENTS) and str(object_id).isdigit():
            report = reverse(f"{self.admin_site.name}:core_accessevent_changelist")
            extra_context = {**(extra_context or {}),
                             "access_report_url": f"{report}?patient={object_id}"}  # fmt: skip
        return super().change_view(request, object_id, form_url, extra_context)


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

    def get_queryset(self, request):
        return super().get_queryset(request).signed()


class PrescriptionAdmin(RecordsAccessAdmin, RecordHistoryAdmin):
    """Read-mostly for now: prescriptions change only through the prescriber's portal."""

    access_action = AccessAction.VIEWED_PRESCRIPTION

    list_display = ["pk", "patient", "prescriber", "dosage_form", "days_supply",
                    "refills_authorized", "written_on", "expires_on"]  # fmt: skip
    list_filter = ["dosage_form", "written_on"]
    list_select_related = ["patient", "prescriber"]
    search_fields = ["patient__last_name", "patient__first_name", "prescriber__npi", "rx_number"]
    show_full_result_count = False
    inlines = [StepInline, LineInline, OrderInline]
    readonly_fields = [field.name for field in Prescription._meta.fields]

    def get_queryset(self, request):
        # The change page shows the patient and the prescriber: read with the prescription.
        # A prescription still awaiting its prescriber's signature is not the pharmacy's yet.
        return (
            super()
            .get_queryset(request)
            .select_related("patient", "prescriber")
            .exclude(pk__in=Order.objects.unsigned_prescription_ids())
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


_PERSON = ("first_name", "last_name", "email")
# What the order page shows of each related table: read with the order, in one query.
ORDER_PAGE_ROWS = {
    # The lines this order dispenses: its prescription's lines of the order's schedule.
    "page_lines": json_rows(
        PrescriptionLine.objects.filter(phase=OuterRef("schedule")), "prescription", "id",
        "position", "quantity", "formulation__id", "formulation__name", "formulation__unit",
        outer="prescription_id",
    ),
    # What this order dispenses of a line when that is not its whole quantity (a part of a
    # fill): PrescriptionLine.objects.of_order.
    "page_quantities": json_rows(OrderQuantity.objects, "order", "line", "units"),
    "page_events": json_rows(
        OrderEvent.objects, "order", "id", "created_at", "kind", "from_status", "to_status",
        "note", "signed_by", "signature_meaning", "parameters",
        *(f"actor__{name}" for name in _PERSON),
    ),
    "page_dispenses": json_rows(
        Dispense.objects, "order", "id", "line__id", "units", "dispensed_at", "batch__lot_number",
        "line__formulation__name", *(f"dispensed_by__{name}" for name in _PERSON),
    ),
    "page_labels": json_rows(LabelDocument.objects, "order", "id", "version", "file",
                             "created_at"),
    "page_deliveries": json_rows(
        Delivery.objects, "order", "id", "kind", "recipient", "status", "attempts", "sent_at",
        "created_at", "last_error",
    ),
}  # fmt: skip


def order_lines(order) -> list[PrescriptionLine]:
    """The order page's lines (read in its one query), each with `units`: what this order
    dispenses of it; a line left to another order of the fill is not shown."""
    own = {row["line"]: Decimal(row["units"]) for row in order.page_quantities}
    lines = instances(PrescriptionLine, order.page_lines, ("position", "pk"))
    for line in lines:
        line.units = own.get(line.pk, line.quantity)
    return [line for line in lines if line.units]


UNSENT = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class OrderAdmin(RecordsAccessAdmin, RecordHistoryAdmin):
    access_action = AccessAction.VIEWED_ORDER
    change_form_template = "admin/orders/order/change_form.html"
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # Half Django's 100: rendering the rows is most of the page's time.
    list_per_page = 50

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
    # The clinical summary and the moves lead the page (its template); the order's own fields
    # are the record, folded away below them.
    fieldsets = [("Record", {"classes": ["collapse"], "fields": readonly_fields})]
    ordering = ["created_at", "pk"]  # oldest first: the order they came in
    actions = [admin.action(description="Print labels of the selected orders")(print_labels)]

    def get_queryset(self, request):
        # A draft is the clinic's until its prescriber signs it: the pharmacy never sees one.
        return super().get_queryset(request).signed()

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
            # A union of two index lookups: "pk = n OR rx_number = n" across the join would
            # read the whole order table.
            by_number = Order.objects.order_by().filter(pk=pk).values("pk")
            by_rx = (
                Order.objects.order_by()
                .filter(prescription__rx_number=search_term.strip())
                .values("pk")
            )
            return queryset.filter(pk__in=by_number.union(by_rx)), False
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
                "<int:object_id>/labels/<int:version>/",
                self.admin_site.admin_view(partial(label_download_view, self)),
                name="orders_order_label",
            ),
            path(
                "<path:object_id>/dispense/",
                self.admin_site.admin_view(partial(dispense_view, self)),
                name="orders_order_dispense",
            ),
            *super().get_urls(),
        ]

    def get_object(self, request, object_id, from_field=None):
        page_order = getattr(request, "_order_page", None)
        if page_order is not None and str(page_order.pk) == str(object_id):
            return page_order  # read once by change_view, with everything the page shows
        return super().get_object(request, object_id, from_field)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        order = None
        if str(object_id).isascii() and str(object_id).isdigit():  # not "²": int() refuses it
            order = (
                self.get_queryset(request)
                .select_related(
                    "prescription__patient", "prescription__prescriber", "clinic", "created_by"
                )
                .annotate(**ORDER_PAGE_ROWS)
                .filter(pk=object_id)
                .first()
            )
        if order is not None:
            request._order_page = order
            lines = order_lines(order)
            dispenses = instances(Dispense, order.page_dispenses)
            extra_context = {
                **(extra_context or {}),
                "summary": order_summary(order, lines=lines),
                "moves": allowed_moves(request.user, order),
                "prescription": order.prescription,
                "lines": lines,
                "findings": order.prescription.findings,
                "events": instances(OrderEvent, order.page_events, ("created_at", "pk")),
                "dispenses": dispenses,
                "labels": instances(LabelDocument, order.page_labels, ("version",))[::-1],
                "deliveries": instances(Delivery, order.page_deliveries, ("created_at", "pk"))[
                    ::-1
                ],
                "may_dispense": order.status in DISPENSABLE_STATUSES
                and has_staff_role(request.user, STAFF)
                and not _fully_dispensed(lines, dispenses),
                "prescriber_suspended": order.prescription.prescriber.status
                == PrescriberStatus.SUSPENDED,
            }
            # After the final check the worker renders the label and emails it: the page
            # answers at once and follows it (it refreshes itself until the label is there).
            extra_context["label_pending"] = not extra_context["labels"] and any(
                d.kind == DeliveryKind.LABEL_READY and d.status in UNSENT
                for d in extra_context["deliveries"]
            )
        return super().change_view(request, object_id, form_url, extra_context)
