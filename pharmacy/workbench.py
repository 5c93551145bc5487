"""The admin's side of the order workflow: the move buttons on an order, the form each move
needs (a password to sign, a question, a reason, a tracking number), and the work queues."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from core.admin_actions import CONFIRMED
from core.audit import record_access
from core.models import AccessAction
from core.numbers import quantity_text
from core.state_machine import refusal_text
from core.text import counted, duration_text
from orders.checks import field_label, finding_key
from orders.models import DISPENSABLE_STATUSES, REVIEW_STATUSES, Order, OrderStatus
from orders.selectors import order_queue_ages
from orders.services import order_fill_check
from orders.workflow import SIGNATURE_MEANING, TRANSITIONS, Needs, allowed_moves
from prescribers.selectors import licences_to_renew

from .dispensing import (
    ScansRefused,
    dispense_partial,
    dispense_scanned,
    expected_lots,
    line_needs,
    lots_in_stock,
    scan_text,
)
from .fulfilment import order_move
from .label_documents import label_render
from .labels import LabelRefused, bottle_pages, label_pages
from .models import LabelDocument, PrintStation
from .notifications import print_job_start
from .selectors import order_summary

S = OrderStatus
WORK_QUEUES = [
    # label, statuses (oldest first in the list they link to)
    ("To review", REVIEW_STATUSES),
    ("On hold (waiting for the prescriber)", (S.ON_HOLD,)),
    ("To compound and dispense", DISPENSABLE_STATUSES),
    ("Ready to ship", (S.READY,)),
]


def work_queues(now=None) -> list[dict]:
    """Each queue with its count, how long its longest-waiting order has been in its status
    (one query) and a link to its orders, oldest first."""
    now = now or timezone.now()
    ages = order_queue_ages({f"queue{i}": statuses for i, (_, statuses) in enumerate(WORK_QUEUES)})
    changelist = reverse("admin:orders_order_changelist")
    queues = []
    for i, (label, statuses) in enumerate(WORK_QUEUES):
        count, since = ages[f"queue{i}"]
        queues.append({
            "label": label, "count": count,
            "url": f"{changelist}?status__in={','.join(statuses)}",
            "oldest": "" if since is None else duration_text(now - since),
        })  # fmt: skip
    return queues


def licence_queues() -> list[dict]:
    """The prescribers' licences to chase (one query): expired ones hold that prescriber's
    orders for the state until renewed; the others expire within the notice period."""
    today = timezone.localdate()
    counts = licences_to_renew().aggregate(
        expired=Count("pk", filter=Q(expires_on__lt=today)),
        soon=Count("pk", filter=Q(expires_on__gte=today)),
    )
    changelist = reverse("admin:prescribers_licence_changelist")
    days = settings.LICENCE_EXPIRY_NOTICE_DAYS
    return [
        {
            "label": "Prescribers' licences expired (their orders for that state wait)",
            "count": counts["expired"],
            "url": f"{changelist}?expiry=expired",
        },
        {
            "label": f"Prescribers' licences expiring within {days} days",
            "count": counts["soon"],
            "url": f"{changelist}?expiry=soon",
        },
    ]


# A keyboard-wedge scanner types each code and Enter: a line each.
SCAN_FIELD = {
    "rows": 4,
    "cols": 40,
    "autocomplete": "off",
    "spellcheck": "false",
    "autofocus": True,
}


class MoveForm(forms.Form):
    """The fields a move needs; the others are removed."""

    password = forms.CharField(
        label="Your password (electronic signature)", widget=forms.PasswordInput, strip=False
    )
    acknowledge = forms.MultipleChoiceField(
        label="I have reviewed these warnings",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    reason = forms.CharField(
        label="Reason (duplicate therapy, early refill)",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)
    labels = forms.CharField(
        label="Scan each bottle's printed label (the scanner types its barcode and Enter: one "
        "per line)",
        widget=forms.Textarea(attrs=SCAN_FIELD),
        max_length=2000,
    )
    carrier = forms.CharField(max_length=50)
    tracking_number = forms.CharField(max_length=100)

    FIELDS = {
        Needs.SIGNATURE: {"password": None, "acknowledge": None, "reason": None},
        Needs.PRESCRIBER_SIGNATURE: {"password": None, "acknowledge": None, "reason": None},
        Needs.QUESTION: {"text": "Question for the prescriber (no patient name needed)"},
        Needs.REASON: {"text": "Why the order is rejected"},
        Needs.ANSWER: {"text": "The prescriber's answer (for example, from a phone call)"},
        Needs.SHIPPING: {"carrier": None, "tracking_number": None},
        Needs.NOTE: {"text": "Note (optional)"},
        Needs.FINAL_CHECK: {"labels": None, "text": "Note (optional)"},
    }

    def __init__(self, *args, needs: Needs, **kwargs):
        super().__init__(*args, **kwargs)
        keep = self.FIELDS[needs]
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
            elif keep[name]:
                self.fields[name].label = keep[name]
        if needs in (Needs.NOTE, Needs.FINAL_CHECK):
            self.fields["text"].required = False
        if needs == Needs.FINAL_CHECK:  # the check says which labels are missing
            self.fields["labels"].required = False


def _order_or_refuse(model_admin, request, object_id) -> Order:
    """The order, if the user may see it in the admin: admin_view only checks that the user is
    staff, and a staff account's rights come from its groups (a Pharmacist or Technician)."""
    # A draft is the clinic's until its prescriber signs it: not found here.
    order = get_object_or_404(Order.objects.signed(), pk=object_id)
    if not model_admin.has_view_permission(request, order):
        raise PermissionDenied("You cannot see orders.")
    return order


def move_view(model_admin, request, object_id, to_status):
    """GET: the form of the move; POST: make it through the service, then back to the order."""
    order = _order_or_refuse(model_admin, request, object_id)
    try:
        to_status = S(to_status)
    except ValueError:
        raise PermissionDenied("No such move.") from None
    move = TRANSITIONS.get((S(order.status), to_status))
    if move is None or (to_status, move) not in allowed_moves(request.user, order):
        messages.error(request, f"You cannot move order {order.number} to {to_status.label}.")
        return redirect("admin:orders_order_change", order.pk)
    form = MoveForm(request.POST if request.method == "POST" else None, needs=move.needs)
    check = None
    if move.needs == Needs.SIGNATURE:
        # What the rules say now, against the patient, prescriber and orders as they are: the
        # pharmacist sees it beside the signature and confirms each new warning.
        check = order_fill_check(order)
        form.fields["acknowledge"].choices = [
            (finding_key(w), f"{field_label(w.field)}: {w.message}") for w in check.new_warnings()
        ]
    if request.method == "POST" and form.is_valid():
        try:
            order_move(
                order=order, to_status=to_status, actor=request.user, inputs=form.cleaned_data
            )
        except ValidationError as refused:
            form.add_error(None, refused.messages)  # each problem on a line of its own
        except PermissionDenied as refused:
            form.add_error(None, refusal_text(refused))
        else:
            messages.success(request, f"Order {order.number}: {to_status.label.lower()}.")
            return redirect("admin:orders_order_change", order.pk)
    return TemplateResponse(
        request,
        "admin/orders/order/move.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": f"{move.label}: order {order.number}",
            "order": order,
            "move": move,
            "form": form,
            "signature_meaning": SIGNATURE_MEANING if move.needs == Needs.SIGNATURE else "",
            "check": check,
            # The order at a glance, beside the signature that vouches for it.
            "summary": order_summary(order) if move.needs == Needs.SIGNATURE else None,
            # The bottles whose labels the final check scans.
            "bottles": bottles_to_check(order) if move.needs == Needs.FINAL_CHECK else None,
            "findings": [
                {"finding": finding, "label": field_label(finding.field)}
                for finding in (check.findings if check else [])
            ],
            "opts": Order._meta,
        },
    )


# Why a technician fills part of an order now (the reason is kept on both orders' timelines).
PARTIAL_REASONS = (
    "Not enough stock",
    "The batches in stock have a BUD that covers only part of the days' supply",
)


def _per_line(data, prefix: str) -> dict[int, str]:
    """{line id: value} of the form's fields named prefix + line id."""
    return {
        int(key.removeprefix(prefix)): value
        for key, value in data.items()
        if key.startswith(prefix)
        and key.removeprefix(prefix).isascii()
        and key.removeprefix(prefix).isdigit()
    }


def bottles_to_check(order: Order) -> list[str]:
    """What each bottle's label should say, for the final check ([] when the order has no
    labels yet: the move refuses with the reason)."""
    try:
        pages = label_pages(order)
    except LabelRefused:
        return []
    return [
        f"{page.drug}, {page.quantity}, lot {', '.join(page.lot_numbers)}, BUD "
        f"{page.beyond_use_date:%m/%d/%Y}"
        for page in bottle_pages(pages)
    ]


def dispense_view(model_admin, request, object_id):
    """GET: each line still to dispense, the lots that could fill it, and a field for the lot
    scanned on its bottle (a keyboard-wedge scanner types it and Enter); POST: dispense the
    scanned lots, or show on each line what was expected."""
    order = _order_or_refuse(model_admin, request, object_id)
    problems: dict[int, str] = {}
    partial = request.method == "POST" and "partial" in request.POST
    partial_problem = ""
    if request.method == "POST":
        scans, units = _per_line(request.POST, "scan-"), _per_line(request.POST, "units-")
        try:
            if partial:
                result, _rest = dispense_partial(
                    order=order, actor=request.user, scans=scans, units=units,
                    reason=request.POST.get("partial-reason", ""),
                )  # fmt: skip
            else:
                result = dispense_scanned(order=order, actor=request.user, scans=scans)
        except ScansRefused as refused:
            problems = refused.problems
        except ValidationError as refused:
            if not partial:
                messages.error(request, refusal_text(refused))
                return redirect("admin:orders_order_change", order.pk)
            partial_problem = refusal_text(refused)  # said beside the partial fill's fields
        except PermissionDenied as refused:
            messages.error(request, refusal_text(refused))
            return redirect("admin:orders_order_change", order.pk)
        else:
            for note in result.notes:
                messages.info(request, note)
            if result.dispenses:
                used = ", ".join(
                    f"{quantity_text(d.units)} from {d.batch}" for d in result.dispenses
                )
                messages.success(request, f"Order {order.number} dispensed: {used}.")
            return redirect("admin:orders_order_change", order.pk)
    needs = line_needs(order)
    expected = expected_lots(order, needs)
    in_stock = lots_in_stock(needs)
    rows = [
        {
            "line": need.line, "units": quantity_text(need.units),
            "expected": expected[need.line.pk],
            # Lots that could give part of it (a partial fill).
            "in_stock": [b for b in in_stock[need.line.pk] if b not in expected[need.line.pk]],
            "problem": problems.get(need.line.pk, ""),
            # A refused form keeps what was typed and scanned, for the next try.
            "scanned": scan_text(request.POST.get(f"scan-{need.line.pk}", ""))[:100],
            "give": request.POST.get(f"units-{need.line.pk}", "").strip()[:20],
        }
        for need in needs
    ]  # fmt: skip
    return TemplateResponse(
        request,
        "admin/orders/order/dispense.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": f"Dispense order {order.number}",
            "order": order,
            "rows": rows,
            "partial_problem": partial_problem,
            "partial_reason": request.POST.get("partial-reason", "")[:200],
            "partial_reasons": PARTIAL_REASONS,
            "opts": Order._meta,
        },
    )


def rerender_view(model_admin, request, object_id):
    """POST: render the order's label again as a new version (the old ones are kept)."""
    order = _order_or_refuse(model_admin, request, object_id)
    if request.method == "POST":
        try:
            document = label_render(order=order, actor=request.user)
        except ValueError as refused:
            messages.error(request, str(refused))
        else:
            messages.success(request, f"Label of {order.number} rendered again: version "
                                      f"{document.version}.")  # fmt: skip
    return redirect("admin:orders_order_change", order.pk)


def label_download_view(model_admin, request, object_id, version):
    """One version of an order's label PDF, for staff who may see the order."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    document = get_object_or_404(LabelDocument, order_id=object_id, version=version)
    number = Order(pk=document.order_id).number
    response = FileResponse(
        document.file.open("rb"), as_attachment=True, content_type="application/pdf",
        filename=f"label-{number}-v{document.version}.pdf",
    )  # fmt: skip
    record_access(request, AccessAction.DOWNLOADED_LABEL, document)
    return response


# The session's last choice of print station ("" for none: a PDF), offered first next time.
PRINT_STATION_SESSION_KEY = "print_station"


def station_label(station: PrintStation) -> str:
    if station.output_format == PrintStation.OutputFormat.ZPL:
        return f"{station.name} (ZPL II, {station.dpi} dpi)"
    return f"{station.name} (PDF)"


class PrintStationForm(forms.Form):
    """Where the labels go: an active print station, or none (a PDF to download). The last
    choice is offered first; with no choice yet, the one active station, if there is one."""

    station = forms.ModelChoiceField(
        label="Print station",
        queryset=PrintStation.objects.filter(is_active=True),
        required=False,
        blank=True,  # a radio button for none too
        empty_label="None: a PDF to download",
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, remembered=None, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["station"]
        field.label_from_instance = station_label
        active = [station.pk for station in field.queryset]
        if remembered in active or remembered == "":
            self.initial["station"] = remembered or None
        elif len(active) == 1:
            self.initial["station"] = active[0]


def print_labels(model_admin, request, queryset):
    """Ask for the print station, then queue the labels of the selected orders for it and open
    the job's page, which follows the rendering and then offers the file: nothing is rendered
    in the request, whatever the number of orders."""
    # Their numbers are their ids: the page lists them without reading the orders.
    orders = [Order(pk=pk) for pk in queryset.order_by("pk").values_list("pk", flat=True)]
    form = PrintStationForm(
        request.POST if CONFIRMED in request.POST else None,
        remembered=request.session.get(PRINT_STATION_SESSION_KEY),
    )
    if form.is_valid():
        station = form.cleaned_data["station"]
        try:
            job = print_job_start(orders=orders, station=station, actor=request.user)
        except (ValidationError, PermissionDenied) as refused:
            messages.error(request, refusal_text(refused))
            return None
        request.session[PRINT_STATION_SESSION_KEY] = station.pk if station else ""
        return redirect("admin:pharmacy_printjob_change", job.pk)
    return TemplateResponse(
        request,
        "admin/action_form.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": f"Print the labels of {counted(len(orders), 'order', 'orders')}",
            "form": form,
            "objects": orders,
            "action": request.POST["action"],
            "opts": model_admin.model._meta,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "confirmed": CONFIRMED,
        },
    )
