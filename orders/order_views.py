"""The prescriber's ordering pages: new order, live dose check, order list and detail, cancel,
refill. Every query is limited to the prescriber's clinic (another clinic's order is a 404)."""

import json
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.http import urlencode
from django.views import View
from django.views.generic import DetailView, FormView, ListView

from core.audit import RecordsAccessMixin, record_when_shown
from core.models import AccessAction
from core.pagination import EstimatedCountPaginator
from core.problems import field_errors
from core.state_machine import refusal_text
from prescribers.access import ClinicMemberRequiredMixin
from prescribers.selectors import clinic_prescribers

from .checks import (
    Catalogue,
    check_fill,
)
from .dose_check import dose_check_answer
from .dosing import DosageForm, Regimen, quantity_needed
from .forms import (
    AmendForm,
    AnswerForm,
    CancelForm,
    OrderFilterForm,
    OrderForm,
    ProtocolForm,
    RefillForm,
    opioid_contradiction,
)
from .medications import Group, mentions
from .models import (
    FillSchedule,
    Order,
    OrderEventKind,
    OrderStatus,
    Patient,
    Prescription,
    TimeOfDay,
    TitrationProtocol,
)
from .order_input import format_schedule, parse_schedule
from .protocols import protocol_regimen
from .selectors import clinic_patient
from .serializers import DoseCheckSerializer
from .services import (
    PrescriptionNotAccepted,
    SignerRefused,
    order_amend,
    order_answer,
    order_cancel,
    order_submit,
    prescription_refill,
    prescription_refills_left,
    refill_schedule,
)
from .workflow import allowed_moves


class DraftingMixin(ClinicMemberRequiredMixin):
    """The clinic's staff draft for a prescriber of the clinic, named on the form."""

    def signers(self):
        return None if self.prescriber is not None else clinic_prescribers(self.clinic_id)

    def drafted(self, order: Order) -> None:
        messages.success(
            self.request, f"Draft {order.number} saved: it waits for {order.signer}'s signature."
        )


class OrderCreateView(DraftingMixin, FormView):
    form_class = OrderForm
    template_name = "orders/order_form.html"

    @cached_property
    def patient(self) -> Patient:
        return _found(clinic_patient(self.clinic_id, self.kwargs["patient_pk"]))

    @cached_property
    def catalogue(self) -> Catalogue:
        return Catalogue.current()

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "catalogue": self.catalogue, "signers": self.signers()}

    @cached_property
    def protocols(self) -> list[TitrationProtocol]:
        return list(TitrationProtocol.objects.filter(clinic_id=self.clinic_id))

    @cached_property
    def chosen_protocol(self) -> TitrationProtocol | None:
        chosen = self.request.GET.get("protocol", "")
        if not chosen:  # read the protocols only for a page that shows them
            return None
        return next((p for p in self.protocols if str(p.pk) == chosen), None)

    def get_initial(self):
        """ "Order again": the prescription of one of this patient's orders, as a new one to
        review; or the schedule of one of the clinic's protocols (the rules run on either)."""
        if self.chosen_protocol is not None:
            protocol = self.chosen_protocol
            initial = ProtocolForm.initial_from(protocol)
            del initial["name"]
            return initial | {"quantity": protocol_regimen(protocol).quantity}
        source = Order.pk_from_number(self.request.GET.get("from", ""))
        if source is None:
            return with_suggested_changes(super().get_initial(), self.request.GET)
        orders = Order.objects.of_clinic(self.clinic_id).filter(prescription__patient=self.patient)
        order = get_object_or_404(orders.select_related("prescription"), pk=source)
        return with_suggested_changes(AmendForm.initial_from(order.prescription), self.request.GET)

    def get_context_data(self, **kwargs):
        concentrations = {
            form: [f"{c:f}" for c in self.catalogue.concentrations(form)]
            for form, _ in self.catalogue.dosage_forms()
        }
        return super().get_context_data(
            protocols=self.protocols,
            chosen_protocol=self.chosen_protocol,
            patient=self.patient,
            concentrations=concentrations,
            bud_limits=self.catalogue.bud_limits(),
            **kwargs,
        )

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            order = order_submit(
                actor=self.request.user,
                patient=self.patient,
                regimen=form.regimen(),
                diagnosis_codes=data["diagnosis_codes"],
                reason_for_compounding=data["reason_for_compounding"],
                ship_to=data["ship_to"],
                needed_by=data["needed_by"],
                acknowledged=data.get("acknowledge", ()),
                reason=data.get("reason", ""),
                idempotency_key=data["idempotency_key"],
                catalogue=self.catalogue,
                signer=data.get("signer"),
            )
        except PrescriptionNotAccepted as refused:
            form.show_findings(refused.findings, refused.unacknowledged)
            return self.form_invalid(form)
        except SignerRefused as refused:
            form.add_error("signer", refused)
            return self.form_invalid(form)
        if getattr(order, "resubmitted", False):
            messages.warning(
                self.request,
                f"An identical order for this patient was already placed from this form "
                f"({order.number}): nothing new was ordered.",
            )
        elif order.status == OrderStatus.DRAFT:
            self.drafted(order)
        else:
            messages.success(self.request, f"Order {order.number} submitted.")
        return redirect("order_detail", order.pk)


# Room for any schedule a suggestion proposes; a longer text is not read at all.
SUGGESTED_SCHEDULE_CHARS = 200


def with_suggested_changes(initial: dict, query) -> dict:
    """ "Renew with changes" from the diary's suggestions: the schedule (typed as on the form,
    "1.5 x 30") with the days' supply and quantity it needs, and the time of day, over the
    form's initial values. A value that is not valid is ignored; the dose rules check the whole
    form when it is sent, as ever."""
    initial = dict(initial)
    if query.get("time_of_day") in TimeOfDay.values:
        initial["time_of_day"] = query["time_of_day"]
    typed = query.get("schedule", "")
    if not typed or len(typed) > SUGGESTED_SCHEDULE_CHARS:
        return initial
    try:
        steps = parse_schedule(typed)
    except ValidationError:
        return initial
    days = sum(step.days for step in steps)
    initial |= {"steps": format_schedule(steps), "days_supply": days}
    if initial.get("dosage_form") in {form.value for form in DosageForm}:
        concentration = initial.get("concentration_mg_per_ml")
        regimen = Regimen(
            dosage_form=DosageForm(initial["dosage_form"]),
            steps=steps,
            doses_per_day=initial.get("doses_per_day", 1),
            quantity=None,
            days_supply=days,
            refills=0,
            concentration_mg_per_ml=Decimal(concentration) if concentration else None,
        )
        initial["quantity"] = quantity_needed(regimen) or initial.get("quantity")
    return initial


class OrderAmendView(OrderCreateView):
    """On hold: the prescriber answers by changing the prescription (the rules run again)."""

    form_class = AmendForm

    def check_role(self) -> None:
        if self.prescriber is None:
            raise PermissionDenied("Only a prescriber of this clinic may change a prescription.")

    def signers(self):
        return None

    protocols = []  # the prescription stands: it is changed, not started again
    chosen_protocol = None

    @cached_property
    def order(self) -> Order:
        orders = Order.objects.of_clinic(self.clinic_id).select_related("prescription__patient")
        return get_object_or_404(orders, pk=self.kwargs["pk"])

    @cached_property
    def patient(self) -> Patient:
        return self.order.prescription.patient

    def get_initial(self):
        return AmendForm.initial_from(self.order.prescription)

    def get_context_data(self, **kwargs):
        question = self.order.events.filter(to_status=OrderStatus.ON_HOLD).last()
        return super().get_context_data(
            order=self.order, question=question.note if question else "", **kwargs
        )

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            order_amend(
                order=self.order, actor=self.request.user, regimen=form.regimen(),
                diagnosis_codes=data["diagnosis_codes"],
                reason_for_compounding=data["reason_for_compounding"],
                acknowledged=data["acknowledge"], answer=data["answer"], reason=data["reason"],
            )  # fmt: skip
        except PrescriptionNotAccepted as refused:
            form.show_findings(refused.findings, refused.unacknowledged)
            return self.form_invalid(form)
        except (ValidationError, PermissionDenied) as refused:
            messages.error(self.request, refusal_text(refused))
        else:
            messages.success(self.request, "Prescription amended; the pharmacy reviews it again.")
        return redirect("order_detail", self.order.pk)


class DoseCheckView(ClinicMemberRequiredMixin, View):
    """POST JSON, get the findings of every rule, the directions and the quantity needed (the
    partner API's dose check answers the same: orders.dose_check)."""

    http_method_names = ["post"]

    def post(self, request):
        try:
            payload = json.loads(request.body, parse_float=Decimal, parse_constant=_refuse)
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: nested deeper than the JSON parser goes ("[[[[...").
            return _input_errors([{"field": "", "detail": "Send valid JSON."}])
        check = DoseCheckSerializer(data=payload)
        if not check.is_valid():
            return _input_errors(field_errors(check.errors))
        data = check.validated_data
        patient = prescriber = None
        if data.get("patient_id") is not None:
            patient = _found(clinic_patient(self.clinic_id, data["patient_id"]))
            prescriber = self._prescriber(payload)
            if prescriber is False:
                message = "Choose a prescriber of this clinic to sign."
                return _input_errors([{"field": "signer_id", "detail": message}])
        return JsonResponse(
            dose_check_answer(
                regimen=check.regimen(),
                diagnosis_codes=data["diagnosis_codes"],
                catalogue=Catalogue.current(),
                today=timezone.localdate(),
                patient=patient,
                prescriber=prescriber,
                facts=check.facts(),
            )
        )

    def _prescriber(self, payload: dict):
        """Whose prescription it is: a prescriber's own; for the clinic's staff, the prescriber
        chosen to sign (`signer_id`, optional), so that their licence is checked as they type
        (False: not a prescriber of this clinic)."""
        signer_id = payload.get("signer_id")
        if self.prescriber is not None or signer_id is None:
            return self.prescriber
        signer = None
        if isinstance(signer_id, int) and not isinstance(signer_id, bool):
            signer = clinic_prescribers(self.clinic_id).filter(pk=signer_id).first()
        return False if signer is None else signer


def _found(patient: Patient | None) -> Patient:
    if patient is None:
        raise Http404("No patient of this clinic has this id.")
    return patient


def _input_errors(errors: list[dict]) -> JsonResponse:
    """The live check's 400: each problem with its field (as the page's script reads them)."""
    return JsonResponse(
        {"errors": [{"field": e["field"], "message": e["detail"]} for e in errors]}, status=400
    )


def _refuse(constant: str):
    raise ValueError(f"{constant} is not a number")


class MedicationScreenView(ClinicMemberRequiredMixin, View):
    """POST {"medications": "..."}: the opioids the list names, as the patient form shows them
    while the prescriber types (the form checks again when it is saved)."""

    http_method_names = ["post"]

    def post(self, request):
        try:
            payload = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            payload = None
        medications = payload.get("medications") if isinstance(payload, dict) else None
        if not isinstance(medications, str) or len(medications) > 10_000:
            return JsonResponse(
                {"errors": [{"field": "medications", "message": "Send the list as text."}]},
                status=400,
            )
        found = mentions(medications, Group.OPIOID)
        return JsonResponse(
            {
                "opioids": [
                    {"written": m.written, "drug": m.drug.name, "class": m.drug.drug_class}
                    for m in found
                ],
                "contradiction": opioid_contradiction(found),
            }
        )


class ClinicOrdersMixin(ClinicMemberRequiredMixin):
    def orders(self):
        return Order.objects.of_clinic(self.clinic_id)


class OrderListView(ClinicOrdersMixin, ListView):
    template_name = "orders/order_list.html"
    context_object_name = "orders"
    paginate_by = 25
    paginator_class = EstimatedCountPaginator

    def get_queryset(self):
        orders = self.orders().select_related("prescription__patient")
        orders = orders.prefetch_related("prescription__steps")
        self.filters = OrderFilterForm(self.request.GET)
        if not self.filters.is_valid():  # the errors show on the filters; nothing filtered
            return orders
        data = self.filters.cleaned_data
        if data["status"]:
            orders = orders.filter(status=data["status"])
        if data["since"]:
            orders = orders.filter(created_at__date__gte=data["since"])
        if data["until"]:
            orders = orders.filter(created_at__date__lte=data["until"])
        query = " ".join(data["q"].split())
        if query:
            number = Order.pk_from_number(query)
            if number is not None:
                return orders.filter(pk=number)
            for word in query.split():
                orders = orders.filter(
                    Q(prescription__patient__first_name__icontains=word)
                    | Q(prescription__patient__last_name__icontains=word)
                )
        return orders

    def get_context_data(self, **kwargs):
        # The filters as a query string, for the pages' links.
        kept = {
            k: v for k, v in self.request.GET.items() if k != "page" and k in self.filters.fields
        }
        return super().get_context_data(filters=self.filters, kept=urlencode(kept), **kwargs)


class OrderDetailView(ClinicOrdersMixin, RecordsAccessMixin, DetailView):
    template_name = "orders/order_detail.html"
    context_object_name = "order"
    access_action = AccessAction.VIEWED_ORDER

    def get_queryset(self):
        return self.orders().select_related(
            "prescription__patient", "prescription__prescriber", "created_by", "signer"
        )

    def get_context_data(self, **kwargs):
        order = self.object
        prescription = order.prescription
        moves = {to for to, _ in allowed_moves(self.request.user, order)}
        events = list(order.events.select_related("actor"))
        labels = [e for e in events if e.kind == OrderEventKind.LABEL_RENDERED]
        holds = [e for e in events if e.to_status == OrderStatus.ON_HOLD]
        question = holds[-1] if order.status == OrderStatus.ON_HOLD and holds else None
        return super().get_context_data(
            prescription=prescription,
            steps=prescription.steps.all(),
            lines=order.lines().select_related("formulation"),
            events=events,
            timeline=events,
            label=labels[-1] if labels else None,
            other_fills=prescription.orders.exclude(pk=order.pk).order_by("fill_number"),
            may_cancel=OrderStatus.CANCELLED in moves,
            may_sign=order.status == OrderStatus.DRAFT
            and self.prescriber is not None
            and order.signer_id == self.prescriber.pk,
            may_answer=OrderStatus.IN_REVIEW in moves,
            question=question.detail if question else "",
            answer_form=AnswerForm(),
            refills_left=prescription_refills_left(prescription),
            expired=timezone.localdate() > prescription.expires_on,
            cancel_form=CancelForm(),
            **kwargs,
        )


class OrderCancelView(ClinicOrdersMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        order = get_object_or_404(self.orders(), pk=pk)
        form = CancelForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        try:
            order_cancel(order=order, actor=request.user, reason=reason)
        except (ValidationError, PermissionDenied) as refused:
            messages.error(request, refusal_text(refused))
        else:
            messages.success(request, f"Order {order.number} cancelled.")
        return redirect("order_detail", order.pk)


class OrderAnswerView(ClinicOrdersMixin, View):
    """The prescriber answers the pharmacy's question; the order returns to review."""

    http_method_names = ["post"]

    def post(self, request, pk):
        order = get_object_or_404(self.orders(), pk=pk)
        form = AnswerForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Write your answer to the pharmacy's question.")
            return redirect("order_detail", order.pk)
        try:
            order_answer(order=order, actor=request.user, answer=form.cleaned_data["answer"])
        except (ValidationError, PermissionDenied) as refused:
            messages.error(request, refusal_text(refused))
        else:
            messages.success(request, "Answer sent; the pharmacy reviews the order again.")
        return redirect("order_detail", order.pk)


class PrescriptionRefillView(DraftingMixin, FormView):
    """The next fill of a prescription: GET shows what the refill dispenses and what the rules
    say now (against the patient record and the orders as they are); POST requests it, with
    the warnings confirmed."""

    form_class = RefillForm
    template_name = "orders/refill_form.html"

    @cached_property
    def prescription(self) -> Prescription:
        prescriptions = Prescription.objects.filter(patient__clinic_id=self.clinic_id)
        return get_object_or_404(
            prescriptions.select_related("patient", "prescriber"), pk=self.kwargs["pk"]
        )

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        record_when_shown(request, response, AccessAction.VIEWED_PRESCRIPTION, self.prescription)
        return response

    @cached_property
    def schedule(self) -> FillSchedule:
        """What the refill dispenses, by the "titrate again" box as sent (unticked on GET)."""
        retitrate = RefillForm.base_fields["retitrate"].to_python(
            self.request.POST.get("retitrate")
        )
        return refill_schedule(self.prescription, retitrate=retitrate)

    @cached_property
    def has_maintenance(self) -> bool:
        """Whether the prescription is a titration, whose refills may titrate again."""
        return refill_schedule(self.prescription, retitrate=False) == FillSchedule.MAINTENANCE

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "signers": self.signers()}

    def get_initial(self):
        # A refill draft is for the prescription's prescriber, when they still sign here.
        return {"signer": self.prescription.prescriber_id}

    def get_form(self, form_class=None):
        form = super().get_form(form_class)
        if not form.is_bound:  # what the rules say now, before anything is sent
            check = check_fill(prescription=self.prescription, schedule=self.schedule)
            form.show_findings(check.findings, [], check.earlier)
        return form

    def get_context_data(self, **kwargs):
        prescription = self.prescription
        return super().get_context_data(
            prescription=prescription,
            patient=prescription.patient,
            lines=prescription.lines.filter(phase=self.schedule).select_related("formulation"),
            schedule=self.schedule,
            has_maintenance=self.has_maintenance,
            refills_left=prescription_refills_left(prescription),
            back_order=prescription.orders.order_by("fill_number").first(),
            **kwargs,
        )

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            order = prescription_refill(
                prescription=self.prescription,
                actor=self.request.user,
                ship_to=data["ship_to"],
                needed_by=data["needed_by"],
                idempotency_key=data["idempotency_key"],
                retitrate=data["retitrate"],
                acknowledged=data.get("acknowledge", ()),
                reason=data.get("reason", ""),
                signer=data.get("signer"),
            )
        except PrescriptionNotAccepted as refused:
            form.show_findings(refused.findings, refused.unacknowledged, refused.earlier)
            return self.form_invalid(form)
        except SignerRefused as refused:
            form.add_error("signer", refused)
            return self.form_invalid(form)
        if order.status == OrderStatus.DRAFT:
            self.drafted(order)
        else:
            messages.success(
                self.request, f"Refill {order.number} requested ({order.get_schedule_display()})."
            )
        return redirect("order_detail", order.pk)
