"""Recalls in the admin: the read-only list of recalls, each with its impact and a CSV export,
and the two actions (on batches, on ingredient lots) that start a recall after asking why.

The actions are attached by the Batch and IngredientLot admins, which define
has_recall_permission (a pharmacist)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse

from core.admin import ReadOnlyMixin
from core.admin_actions import CONFIRMED, run_for_each
from core.audit import record_access, record_when_shown
from core.models import AccessAction
from core.text import counted

from .models import RecallNotice
from .recalls import batch_recall, ingredient_lot_recall
from .selectors import impact_csv, recall_impact

VIEW_RECALL = "pharmacy.view_recall"


class RecallReasonForm(forms.Form):
    """The intermediate page of a recall action. (Not pharmacy.admin.ReasonForm: the model
    admins in pharmacy/admin.py import this module.)"""

    reason = forms.CharField(
        label="Reason for the recall",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Recorded on the recall and on each recalled record. No patient names.",
    )


def _change_url(admin_site, obj) -> str:
    """The admin page of obj on this site, or "" when its model has none there."""
    opts = obj._meta
    try:
        return reverse(
            f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]
        )
    except NoReverseMatch:
        return ""


class RecallAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """Recalls are started by the actions on batches and ingredient lots; here they are only
    read. The change page shows everything the recall reaches."""

    change_form_template = "admin/pharmacy/recall/change_form.html"
    list_display = ["initiated_at", "recalled", "initiated_by", "notice_count",
                    "pending_notice_count", "unconfirmed_notice_count"]  # fmt: skip
    list_select_related = ["batch", "ingredient_lot__ingredient", "initiated_by"]
    search_fields = ["batch__lot_number", "ingredient_lot__lot_number"]
    date_hierarchy = "initiated_at"
    fields = ["batch", "ingredient_lot", "reason", "initiated_by", "initiated_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                notice_total=Count("notices"),
                notices_pending=Count(
                    "notices", filter=Q(notices__status=RecallNotice.Status.PENDING)
                ),
                notices_unconfirmed=Count(
                    "notices", filter=Q(notices__acknowledged_at__isnull=True)
                ),
            )
        )

    @admin.display(description="recall of")
    def recalled(self, recall):
        if recall.batch_id is not None:
            return f"batch {recall.batch}"
        return f"ingredient lot {recall.ingredient_lot}"

    @admin.display(description="clinic notices", ordering="notice_total")
    def notice_count(self, recall):
        return recall.notice_total

    @admin.display(description="emails not sent yet", ordering="notices_pending")
    def pending_notice_count(self, recall):
        return recall.notices_pending

    @admin.display(description="clinics yet to confirm", ordering="notices_unconfirmed")
    def unconfirmed_notice_count(self, recall):
        return recall.notices_unconfirmed

    def get_urls(self):
        return [
            path(
                "<path:object_id>/csv/",
                self.admin_site.admin_view(self.csv_view),
                name="pharmacy_recall_csv",
            ),
            *super().get_urls(),
        ]

    def csv_view(self, request, object_id):
        """The impact, one row per dispense, as a download (PHI: for the pharmacist only)."""
        if not request.user.has_perm(VIEW_RECALL):
            raise PermissionDenied
        recall = self.get_object(request, unquote(object_id))
        if recall is None:
            raise Http404("No such recall.")
        impact = recall_impact(recall)
        response = HttpResponse(
            impact_csv(impact),
            content_type="text/csv; charset=utf-8",
            # admin_view adds never_cache: no copy of the PHI is kept by a cache.
            headers={"Content-Disposition": f'attachment; filename="recall-{recall.pk}.csv"'},
        )
        # One event for the whole list, with how many patients it names.
        record_access(
            request, AccessAction.EXPORTED_RECALL, recall, record_count=impact.counts["patients"]
        )
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        recall = self.get_object(request, unquote(object_id))
        impact = None
        if recall is not None:
            impact = recall_impact(recall)
            site = self.admin_site
            extra_context = {
                **(extra_context or {}),
                "impact": impact,
                "batch_rows": [(b, _change_url(site, b)) for b in impact.batches],
                "dispense_rows": [(d, _change_url(site, d.order)) for d in impact.dispenses],
                "may_export": request.user.has_perm(VIEW_RECALL),
            }
        response = super().change_view(request, object_id, form_url, extra_context)
        if impact is not None:  # the page lists the patients the recall reaches
            record_when_shown(request, response, AccessAction.VIEWED_RECALL, recall,
                              record_count=impact.counts["patients"])  # fmt: skip
        return response


# --- Actions attached by the Batch and IngredientLot admins -------------------------------------


def _recall_selected(modeladmin, request, queryset, *, start, title: str, noun: tuple[str, str],
                     describe):  # fmt: skip
    """Ask for the reason; then start(obj, reason) for each selected row. One recall started:
    open its page; several: say how many."""
    form = RecallReasonForm(request.POST if CONFIRMED in request.POST else None)
    if not form.is_valid():
        return TemplateResponse(
            request,
            "admin/pharmacy/recall/reason.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": title,
                "form": form,
                "selected": [(obj, describe(obj)) for obj in queryset.order_by("pk")],
                "action": request.POST["action"],
                "opts": modeladmin.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "confirmed": CONFIRMED,
            },
        )
    recalls = []
    reason = form.cleaned_data["reason"]
    run_for_each(
        modeladmin, request, queryset,
        lambda obj: recalls.append(start(obj, request.user, reason)),
        (f"{noun[0]} recalled", f"{noun[1]} recalled"),
    )  # fmt: skip
    if len(recalls) == 1 and queryset.count() == 1:
        url = reverse(f"{modeladmin.admin_site.name}:pharmacy_recall_change", args=[recalls[0].pk])
        return HttpResponseRedirect(url)
    if recalls:
        notices = RecallNotice.objects.filter(recall__in=recalls).count()
        modeladmin.message_user(
            request,
            f"{counted(notices, 'clinic notice is', 'clinic notices are')} waiting to be sent.",
            messages.INFO,
        )
    return None


def _describe_batch(batch) -> str:
    return f"{batch.formulation_version.formulation}, {batch.get_status_display().lower()}"


def _describe_lot(lot) -> str:
    return (
        f"{lot.manufacturer}, expires {lot.expires_on:%Y-%m-%d}, "
        f"{lot.get_status_display().lower()}, "
        f"used in {counted(lot.batch_count, 'batch', 'batches')}"
    )


@admin.action(description="Recall selected batches (a notice to each affected clinic)",
              permissions=["recall"])  # fmt: skip
def recall_batches(modeladmin, request, queryset):
    return _recall_selected(
        modeladmin, request, queryset.select_related("formulation_version__formulation"),
        start=lambda batch, actor, reason: batch_recall(batch=batch, actor=actor, reason=reason),
        title="Recall batches", noun=("batch", "batches"), describe=_describe_batch,
    )  # fmt: skip


@admin.action(
    description="Recall selected ingredient lots and the batches made from them",
    permissions=["recall"],
)
def recall_lots(modeladmin, request, queryset):
    return _recall_selected(
        modeladmin, request,
        queryset.select_related("ingredient").annotate(
            batch_count=Count("uses__batch", distinct=True)
        ),
        start=lambda lot, actor, reason: ingredient_lot_recall(lot=lot, actor=actor,
                                                               reason=reason),
        title="Recall ingredient lots", noun=("ingredient lot", "ingredient lots"),
        describe=_describe_lot,
    )  # fmt: skip
