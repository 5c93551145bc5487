"""Recalls in the admin: the read-only list of recalls, each with its impact and a CSV export,
and the two actions (on batches, on ingredient lots) that start a recall after asking why.

A recall's page follows it to the end: the units each batch set aside, the dispenses pulled back
from orders not shipped, the orders whose patients hold units with their replacements (made for
all of them by one button, a pharmacist's), and each clinic's notice: its email and the clinic's
confirmation. While an email is unsent or a clinic has not confirmed, static/js/recall_live.js
asks notices_view for those two columns every few seconds and updates them in place: no
reload, so the page (whose patient lists are an access event) is not shown again.

The actions are attached by the Batch and IngredientLot admins, which define
has_recall_permission (a pharmacist)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.admin import ReadOnlyMixin
from core.admin_actions import CONFIRMED, run_for_each
from core.audit import record_access, record_when_shown
from core.models import AccessAction
from core.roles import is_pharmacist
from core.state_machine import refusal_text
from core.text import counted

from .models import DeliveryStatus, RecallNotice
from .recalls import batch_recall, ingredient_lot_recall, recall_replacements_create
from .selectors import impact_csv, recall_impact, recall_notice_states, recall_progress

VIEW_RECALL = "pharmacy.view_recall"
# How often the recall's page asks for its notices while one is unsent or unconfirmed.
POLL_SECONDS = 5


class RecallReasonForm(forms.Form):
    """The intermediate page of a recall action. (Not pharmacy.admin.ReasonForm: the model
    admins in pharmacy/admin.py import this module.)"""

    reason = forms.CharField(
        label="Reason for the recall",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Recorded on the recall and on each recalled record. No patient names.",
    )


def _when(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"


def _email_text(delivery) -> str:
    """Where one email of a notice stands, as the recall's page says it."""
    if delivery.status == DeliveryStatus.SENT:
        return f"Sent {_when(delivery.sent_at)}" if delivery.sent_at else "Sent"
    if delivery.status == DeliveryStatus.FAILED:
        return f"Failed: {delivery.last_error}"
    if delivery.status == DeliveryStatus.PENDING and delivery.attempts:
        return f"Pending (tried {counted(delivery.attempts, 'time', 'times')})"
    return delivery.get_status_display()


def notice_state(notice: RecallNotice) -> dict:
    """One clinic's notice as the page and its updates show it: its email(s) and the clinic's
    confirmation; `settled` once every email is sent and the clinic confirmed."""
    deliveries = list(notice.deliveries.all())  # prefetched (selectors.recall_notice_states)
    sent = bool(deliveries) and all(d.status == DeliveryStatus.SENT for d in deliveries)
    if notice.acknowledged_at is not None:
        confirmation = (
            f"confirmed by {notice.acknowledged_by.get_full_name()}, "
            f"{_when(notice.acknowledged_at)}"
        )
    else:
        confirmation = "not confirmed yet"
    return {
        "id": notice.pk,
        "email": "; ".join(_email_text(d) for d in deliveries) or notice.get_status_display(),
        "confirmation": confirmation,
        "settled": sent and notice.acknowledged_at is not None,
    }


def _change_url(admin_site, obj, pk=None) -> str:
    """The admin page of obj (or of the object of its model with that pk) on this site, or ""
    when its model has none there."""
    opts = obj._meta
    try:
        return reverse(
            f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change",
            args=[obj.pk if pk is None else pk],
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
            path(
                "<path:object_id>/notices/",
                self.admin_site.admin_view(require_GET(self.notices_view)),
                name="pharmacy_recall_notices",
            ),
            path(
                "<path:object_id>/replacements/",
                self.admin_site.admin_view(require_POST(self.replacements_view)),
                name="pharmacy_recall_replacements",
            ),
            *super().get_urls(),
        ]

    def _recall_or_404(self, request, object_id):
        if not request.user.has_perm(VIEW_RECALL):
            raise PermissionDenied
        recall = self.get_object(request, unquote(object_id))
        if recall is None:
            raise Http404("No such recall.")
        return recall

    def notices_view(self, request, object_id):
        """Each clinic's notice, its email and confirmation, as JSON for the page's updates
        (clinic and staff names only: nothing about a patient). Two queries."""
        recall = self._recall_or_404(request, object_id)
        states = [notice_state(notice) for notice in recall_notice_states(recall)]
        return JsonResponse(
            {"live": not all(state["settled"] for state in states), "notices": states}
        )

    def replacements_view(self, request, object_id):
        """The button "Order replacements for the affected patients" (a pharmacist's): one
        replacement order per affected order that has none for this recall yet."""
        recall = self._recall_or_404(request, object_id)
        try:
            made = recall_replacements_create(recall=recall, actor=request.user)
        except ValidationError as refused:
            self.message_user(request, refusal_text(refused), messages.ERROR)
        else:
            if made:
                numbers = ", ".join(order.number for order in made)
                said = counted(len(made), "replacement order", "replacement orders")
                self.message_user(request, f"{said} made: {numbers}.", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    "No replacement to make: every order whose patient holds units of the "
                    "recalled batches has its replacement.",
                    messages.INFO,
                )
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:pharmacy_recall_change", args=[recall.pk])
        )

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
            progress = recall_progress(impact)
            site = self.admin_site
            notices = [(n, notice_state(n)) for n in progress.notices]
            extra_context = {
                **(extra_context or {}),
                "impact": impact,
                "progress": progress,
                "batch_rows": [
                    (b, _change_url(site, b), progress.quarantine.get(b.pk)) for b in impact.batches
                ],
                "dispense_rows": [(d, _change_url(site, d.order)) for d in impact.dispenses],
                "pulled_rows": [(p, _change_url(site, p.dispense.order)) for p in progress.pulled],
                "order_rows": [
                    (
                        row,
                        _change_url(site, row.order),
                        _change_url(site, row.order, row.replacement_id)
                        if row.replacement_id
                        else "",
                    )
                    for row in progress.affected_orders
                ],
                "notice_rows": notices,
                "live": not all(state["settled"] for _, state in notices),
                "poll_seconds": POLL_SECONDS,
                "may_export": request.user.has_perm(VIEW_RECALL),
                "may_replace": is_pharmacist(request.user) and progress.replacements_owed > 0,
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
