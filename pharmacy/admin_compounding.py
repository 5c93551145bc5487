"""The admin of the compounding records: master formulation versions, ingredient lots,
batches (recorded through the services, read-only once released) and dispenses."""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from core.admin import (
    ReadOnlyInline,
    ReadOnlyMixin,
    ReasonForm,
    RecordHistoryAdmin,
)
from core.admin_actions import form_action, run_for_each
from core.audit import record_access_bulk
from core.forms import LinesField
from core.models import AccessAction
from core.roles import STAFF, has_staff_role, is_pharmacist
from core.state_machine import refusal_text
from core.text import counted
from orders.bud import BudCategory
from orders.checks import bud_limit_days
from orders.dosing import DosageForm, units_text
from orders.models import FormulationIngredient, FormulationVersion, FormulationVersionStatus, Order

from . import batches, formulations, notifications
from .admin_recalls import recall_batches, recall_lots
from .models import (
    UNRELEASED_BATCH_STATUSES,
    Batch,
    BatchEvent,
    BatchIngredient,
    BatchStatus,
    Delivery,
    Dispense,
    IngredientLot,
    IngredientLotEvent,
    PrintJob,
    PrintStation,
    QcResult,
)
from .worksheets import batch_worksheet_pdf
from .zpl import CONTENT_TYPE as ZPL_CONTENT_TYPE


class FormulationAdmin(RecordHistoryAdmin):
    """The catalogue: what prescribers may order (an active product with an approved master
    formulation record), its beyond-use limit, and the stock on the shelf."""

    list_display = [
        "name",
        "dosage_form",
        "unit",
        "is_active",
        "orderable",
        "bud_limit",
        "in_stock",
    ]
    list_filter = ["dosage_form", "is_active"]
    search_fields = ["name"]

    def get_queryset(self, request):
        approved = FormulationVersion.objects.filter(
            formulation=OuterRef("pk"), status=FormulationVersionStatus.APPROVED
        )
        usable = (
            Batch.objects.filter(
                formulation_version__formulation=OuterRef("pk"),
                status=BatchStatus.RELEASED,
                beyond_use_date__gte=timezone.localdate(),
            )
            .order_by()
            .values("formulation_version__formulation")
            .annotate(total=Sum("units_remaining"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                approved_category=Subquery(approved.values("bud_category")[:1]),
                stock=Coalesce(Subquery(usable), Decimal(0)),
            )
        )

    @admin.display(boolean=True, description="orderable")
    def orderable(self, formulation) -> bool:
        return formulation.is_active and formulation.approved_category is not None

    @admin.display(description="beyond-use limit")
    def bud_limit(self, formulation) -> str:
        if formulation.approved_category is None:
            return "no approved record"
        category = BudCategory(formulation.approved_category)
        return f"{bud_limit_days(category)} days ({category.label})"

    @admin.display(description="in stock (released, in date)", ordering="stock")
    def in_stock(self, formulation) -> str:
        return units_text(formulation.stock, formulation.unit)


class IngredientAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "unit"]
    search_fields = ["name"]


class FormulationVersionForm(forms.ModelForm):
    """A draft's change form: the BUD category must fit the dosage form and water activity,
    and the storage must not contradict the category (the same rules the services apply)."""

    # Lists typed one per line, not JSON. The auxiliary labels print on every bottle's label:
    # a few short ones, or the label runs out of room.
    qc_checks = LinesField(
        label="QC checks", max_lines=20, line_length=200,
        help_text="One check per line: each batch records pass or fail.",
    )  # fmt: skip
    auxiliary_labels = LinesField(required=False, max_lines=formulations.AUXILIARY_LABELS_MAX,
                                  line_length=formulations.AUXILIARY_LABEL_LENGTH)  # fmt: skip

    class Meta:
        model = FormulationVersion
        fields = formulations.VERSION_FIELDS

    def clean(self):
        cleaned_data = super().clean()
        needed = ("bud_category", "water_activity", "antimicrobial_preservative", "storage")
        if any(name not in cleaned_data for name in needed):
            return cleaned_data  # a field is missing or invalid: its own error says so
        problems = formulations.formulation_record_problems(
            dosage_form=self.instance.formulation.dosage_form,
            bud_category=cleaned_data["bud_category"],
            water_activity=cleaned_data["water_activity"],
            antimicrobial_preservative=cleaned_data["antimicrobial_preservative"],
            storage=cleaned_data["storage"],
        )
        for problem in problems:
            field = problem.field if problem.field in self.fields else None
            self.add_error(field, ValidationError(problem.message, code=problem.code))
        return cleaned_data


class FormulationIngredientFormSet(forms.BaseInlineFormSet):
    """A capsule's ingredients: each forbidden excipient is refused on its own row."""

    def clean(self):
        super().clean()
        if self.instance.formulation.dosage_form != DosageForm.CAPSULE:
            return
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if data.get("DELETE") or data.get("ingredient") is None:
                continue
            for problem in formulations.capsule_excipient_problems([data["ingredient"].name]):
                form.add_error("ingredient", ValidationError(problem.message, code=problem.code))


class FormulationIngredientInline(admin.TabularInline):
    model = FormulationIngredient
    formset = FormulationIngredientFormSet
    extra = 0
    autocomplete_fields = ["ingredient"]
    fields = ["ingredient", "amount_per_unit", "unit"]
    readonly_fields = ["unit"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("ingredient", "version__formulation")

    @admin.display(description="unit")
    def unit(self, row):
        """The amount's unit, per capsule or mL of the product ("mg per capsule")."""
        if row.pk is None:
            return ""
        return f"{row.ingredient.unit} per {row.version.formulation.unit}"

    def has_change_permission(self, request, obj=None):
        return obj is None or obj.status == FormulationVersionStatus.DRAFT

    has_add_permission = has_delete_permission = has_change_permission


class FormulationVersionAdmin(RecordHistoryAdmin):
    """Master formulation records. Approved and superseded versions are read-only; a change
    is a new draft ("New version from this"), approved by another pharmacist."""

    form = FormulationVersionForm
    list_display = [
        "formulation",
        "version",
        "status",
        "bud_category",
        "water_activity",
        "antimicrobial_preservative",
        "author",
        "approved_by",
    ]
    list_filter = ["status", "formulation__dosage_form"]
    list_select_related = ["formulation", "author", "approved_by"]
    search_fields = ["formulation__name"]
    inlines = [FormulationIngredientInline]
    readonly_fields = [
        "formulation",
        "version",
        "status",
        "author",
        "created_at",
        "approved_by",
        "approved_at",
    ]
    actions = ["approve", "new_version"]

    def has_add_permission(self, request):
        return False  # new versions come from "New version from this"

    def has_change_permission(self, request, obj=None):
        editable = obj is None or obj.status == FormulationVersionStatus.DRAFT
        return editable and super().has_change_permission(request, obj)

    @admin.action(description="Approve selected drafts (not your own)")
    def approve(self, request, queryset):
        def approve(version):
            formulations.formulation_version_approve(version=version, actor=request.user)

        run_for_each(self, request, queryset, approve, ("version approved", "versions approved"))

    @admin.action(description="New version from this (a draft to edit)")
    def new_version(self, request, queryset):
        """One version chosen: its new draft opens, ready to edit."""
        made = []

        def copy(version):
            made.append(
                formulations.formulation_version_draft(
                    formulation=version.formulation,
                    actor=request.user,
                    ingredients=[
                        (i.ingredient, i.amount_per_unit) for i in version.ingredients.all()
                    ],
                    **{name: getattr(version, name) for name in formulations.VERSION_FIELDS},
                )
            )

        run_for_each(self, request, queryset, copy, ("draft made", "drafts made"))
        if len(made) == 1:
            opts = self.model._meta
            url = f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_change"
            return HttpResponseRedirect(reverse(url, args=[made[0].pk]))
        return None


class LotEventInline(ReadOnlyInline):
    model = IngredientLotEvent
    fields = ["created_at", "actor", "from_status", "to_status", "note"]
    readonly_fields = fields


class LotForm(forms.ModelForm):
    class Meta:
        model = IngredientLot
        fields = [
            "ingredient",
            "manufacturer",
            "lot_number",
            "expires_on",
            "quantity_received",
            "certificate_of_analysis",
        ]


class IngredientLotAdmin(RecordHistoryAdmin):
    form = LotForm
    list_display = ["__str__", "manufacturer", "expires_on", "status", "received_on"]
    list_filter = ["status", "ingredient"]
    list_select_related = ["ingredient"]
    search_fields = ["lot_number", "manufacturer", "ingredient__name"]
    autocomplete_fields = ["ingredient"]
    inlines = [LotEventInline]
    actions = ["release", "reject", recall_lots]
    show_full_result_count = False

    def has_recall_permission(self, request):
        return is_pharmacist(request.user)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else [*LotForm.Meta.fields, "status", "received_by"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            saved = batches.lot_receive(actor=request.user, **form.cleaned_data)
        except (ValidationError, PermissionDenied) as refused:
            raise PermissionDenied(refusal_text(refused)) from refused
        obj.pk = saved.pk

    @admin.action(description="Release selected lots for use")
    def release(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda lot: batches.lot_release(lot=lot, actor=request.user),
            ("lot released", "lots released"),
        )

    reject = form_action(
        batches.lot_reject, subject="lot", form_class=ReasonForm, title="Reject lots",
        done=("lot rejected", "lots rejected"), description="Reject selected lots",
    )  # fmt: skip


class BatchIngredientInline(admin.TabularInline):
    model = BatchIngredient
    extra = 1
    fields = ["lot", "amount", "unit"]
    readonly_fields = ["unit"]
    autocomplete_fields = ["lot"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("lot__ingredient")

    @admin.display(description="unit")
    def unit(self, row):
        return row.lot.ingredient.unit if row.pk is not None else ""

    def has_change_permission(self, request, obj=None):
        return False  # a recorded use is not edited; a mistake is recorded as a deviation

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request, obj=None):
        return obj is not None and obj.status == BatchStatus.IN_PROGRESS


class QcResultInline(admin.TabularInline):
    model = QcResult
    extra = 0
    fields = ["check_name", "passed", "notes", "recorded_by", "recorded_at"]
    readonly_fields = ["check_name", "passed", "notes", "recorded_by", "recorded_at"]

    def has_add_permission(self, request, obj=None):
        return False  # recorded with the "Record QC" action

    def has_delete_permission(self, request, obj=None):
        return False


class BatchEventInline(ReadOnlyInline):
    model = BatchEvent
    fields = ["created_at", "actor", "from_status", "to_status", "note"]
    readonly_fields = fields


class DispenseInline(ReadOnlyInline):
    model = Dispense
    fields = ["order", "units", "dispensed_by", "dispensed_at"]
    readonly_fields = fields


class BatchAddForm(forms.ModelForm):
    class Meta:
        model = Batch
        fields = ["formulation_version", "planned_units", "compounded_on"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["formulation_version"].queryset = FormulationVersion.objects.filter(
            status=FormulationVersionStatus.APPROVED
        ).select_related("formulation")

    def clean_compounded_on(self):
        compounded_on = self.cleaned_data["compounded_on"]
        try:
            batches.check_compounded_on(compounded_on)
        except ValidationError as refused:
            raise ValidationError(refused.error_dict["compounded_on"]) from refused
        return compounded_on


class YieldForm(forms.Form):
    actual_units = forms.DecimalField(label="Actual yield (units)", max_digits=10, decimal_places=2)
    deviations = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class QcForm(forms.Form):
    check_name = forms.CharField(label="QC check (as written in the formulation record)")
    passed = forms.BooleanField(required=False, help_text="Tick if the check passed.")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ReleaseForm(forms.Form):
    bud_shortened_to = forms.DateField(
        label="Shorten the BUD to (optional)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )


class BatchAdmin(RecordHistoryAdmin):
    change_form_template = "admin/pharmacy/batch/change_form.html"

    def get_urls(self):
        return [
            path(
                "<int:object_id>/worksheet/",
                self.admin_site.admin_view(self.worksheet_view),
                name="pharmacy_batch_worksheet",
            ),
            *super().get_urls(),
        ]

    def worksheet_view(self, request, object_id):
        """The batch's compounding record as a PDF to print (blanks for what is still to do)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        batch = get_object_or_404(
            Batch.objects.select_related(
                "formulation_version__formulation", "formulation_version__approved_by",
                "compounded_by", "released_by",
            ),
            pk=object_id,
        )  # fmt: skip
        return HttpResponse(
            batch_worksheet_pdf(batch), content_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="batch-{batch.lot_number}.pdf"'},
        )  # fmt: skip

    list_display = [
        "lot_number",
        "product",
        "status_badge",
        "compounded_on",
        "compounded_by",
        "units_remaining",
        "beyond_use_date",
    ]
    list_filter = ["status", "formulation_version__formulation__dosage_form"]
    list_select_related = ["formulation_version__formulation", "compounded_by"]
    search_fields = ["lot_number", "ingredients__lot__lot_number"]
    show_full_result_count = False
    inlines = [BatchIngredientInline, QcResultInline, DispenseInline, BatchEventInline]
    actions = ["submit_for_qc", "record_qc", "release", "reject", "quarantine", recall_batches]
    readonly_fields = [
        "lot_number",
        "formulation_version",
        "status",
        "compounded_on",
        "compounded_by",
        "planned_units",
        "actual_units",
        "units_remaining",
        "deviations",
        "bud_shortened_to",
        "beyond_use_date",
        "bud_explanation",
        "qc_checks",
        "released_by",
        "released_at",
    ]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = BatchAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def has_change_permission(self, request, obj=None):
        # A released (or rejected, recalled) batch's record is read-only.
        open_record = obj is None or obj.status in UNRELEASED_BATCH_STATUSES
        return open_record and super().has_change_permission(request, obj)

    @admin.display(description="product", ordering="formulation_version__formulation__name")
    def product(self, batch):
        return batch.formulation_version.formulation

    @admin.display(description="status", ordering="status")
    def status_badge(self, batch):
        return format_html(
            '<span class="batch-status batch-status-{}">{}</span>',
            batch.status,
            batch.get_status_display(),
        )

    @admin.display(description="QC checks of the formulation record")
    def qc_checks(self, batch):
        return "; ".join(batch.formulation_version.qc_checks)

    def save_model(self, request, obj, form, change):
        if change:
            return  # only inlines change on an open record (see save_formset)
        try:
            saved = batches.batch_start(actor=request.user, **form.cleaned_data)
        except (ValidationError, PermissionDenied) as refused:
            raise PermissionDenied(refusal_text(refused)) from refused
        obj.pk, obj.lot_number = saved.pk, saved.lot_number

    def save_formset(self, request, form, formset, change):
        if formset.model is not BatchIngredient:
            return
        for inline_form in formset.extra_forms:
            data = getattr(inline_form, "cleaned_data", None)
            if not data or not inline_form.has_changed():
                continue
            try:
                batches.batch_add_ingredient(
                    batch=form.instance, lot=data["lot"], amount=data["amount"], actor=request.user
                )
            except (ValidationError, PermissionDenied) as refused:
                messages.error(request, refusal_text(refused))

    submit_for_qc = form_action(
        batches.batch_submit_for_qc, subject="batch", form_class=YieldForm, title="Send to QC",
        done=("batch sent to QC", "batches sent to QC"),
        description="Record the yield and send to QC",
    )  # fmt: skip
    record_qc = form_action(
        batches.batch_record_qc, subject="batch", form_class=QcForm, title="Record QC",
        done=("QC result recorded", "QC results recorded"), description="Record a QC result",
    )  # fmt: skip
    release = form_action(
        batches.batch_release, subject="batch", form_class=ReleaseForm, title="Release",
        done=("batch released", "batches released"),
        description="Release selected batches (pharmacist who did not compound them)",
    )  # fmt: skip
    reject = form_action(
        batches.batch_reject, subject="batch", form_class=ReasonForm, title="Reject",
        done=("batch rejected", "batches rejected"), description="Reject selected batches",
    )  # fmt: skip
    quarantine = form_action(
        batches.batch_quarantine, subject="batch", form_class=ReasonForm, title="Quarantine",
        done=("batch quarantined", "batches quarantined"),
        description="Quarantine selected batches",
    )  # fmt: skip

    def has_recall_permission(self, request):
        return is_pharmacist(request.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not has_staff_role(request.user, STAFF):
            return {}
        if not is_pharmacist(request.user):
            for name in ("release", "reject", "quarantine"):
                actions.pop(name, None)
        return actions


class DispenseAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["order", "batch", "units", "dispensed_by", "dispensed_at"]
    list_select_related = ["order", "batch", "dispensed_by"]
    search_fields = ["batch__lot_number"]
    show_full_result_count = False


class DeliveryAdmin(admin.ModelAdmin):
    """The outbox: every email, its status, attempts and last error; failed ones can be retried."""

    list_display = ["created_at", "kind", "recipient", "subject_key", "status", "attempts",
                    "sent_at", "last_error"]  # fmt: skip
    list_filter = ["status", "kind"]
    search_fields = ["recipient", "subject_key", "message_id"]
    show_full_result_count = False
    readonly_fields = [field.name for field in Delivery._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Retry selected failed deliveries", permissions=["change"])
    def retry(self, request, queryset):
        retried = sum(notifications.delivery_retry(delivery=d) for d in queryset.order_by("pk"))
        self.message_user(request, f"{counted(retried, 'email', 'emails')} queued again.")


class PrintStationAdmin(admin.ModelAdmin):
    """The printers labels are printed on: pharmacists add and change them, technicians see
    them. A station is retired by making it inactive, never deleted: its print jobs keep it."""

    list_display = ["name", "output_format", "resolution", "is_active"]
    list_filter = ["output_format", "is_active"]
    search_fields = ["name"]
    fields = ["name", "output_format", "dpi", "is_active"]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="resolution", ordering="dpi")
    def resolution(self, station):
        if station.output_format == PrintStation.OutputFormat.ZPL:
            return f"{station.dpi} dpi"
        return "-"


# What a print job's file is, by its extension (the station may have changed since).
PRINT_FILE_TYPES = {"pdf": "application/pdf", "zpl": ZPL_CONTENT_TYPE}


class PrintJobAdmin(admin.ModelAdmin):
    """Label prints: their progress (the page refreshes itself) and the file when done, a PDF
    or ZPL II for the job's print station."""

    change_form_template = "admin/pharmacy/printjob/change_form.html"
    list_display = ["created_at", "created_by", "station", "total", "done", "status"]
    list_select_related = ["created_by", "station"]
    readonly_fields = [
        "created_by",
        "created_at",
        "station",
        "total",
        "done",
        "status",
        "file",
        "error",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("orders.view_order")

    def get_urls(self):
        return [
            path(
                "<int:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="pharmacy_printjob_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request, object_id):
        """The file of a finished print job (.pdf or .zpl); each of its orders' labels counts
        as seen."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = get_object_or_404(PrintJob, pk=object_id)
        if not job.file:
            raise Http404("The labels are not rendered yet.")
        extension = job.file_extension
        response = FileResponse(
            job.file.open("rb"),
            as_attachment=True,
            content_type=PRINT_FILE_TYPES.get(extension, "application/octet-stream"),
            filename=f"labels-{job.total}-orders.{extension}",
        )
        # The order numbers are their ids: no query to name them.
        orders = [Order(pk=order_id) for order_id in job.order_ids]
        record_access_bulk(request, AccessAction.DOWNLOADED_LABEL_PRINT, orders)
        return response
