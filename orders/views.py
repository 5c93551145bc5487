import datetime

from django.contrib import messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.http import urlencode
from django.views.generic import DetailView, FormView, ListView, TemplateView

from core.audit import RecordsAccessMixin
from core.models import AccessAction
from prescribers.access import ClinicMemberRequiredMixin
from prescribers.selectors import clinic_prescribers, licences_to_renew

from .diary_chart import PatientDiary, patient_diary
from .forms import PatientForm
from .models import Order, OrderStatus, Patient
from .selectors import refills_due
from .services import patient_create, patient_update
from .titration_advice import Suggestion

DASHBOARD_PATIENTS = 8
DASHBOARD_ORDERS = 10


class ClinicPatientsMixin(ClinicMemberRequiredMixin):
    def patients(self):
        # Every query is limited to the prescriber's clinic: another clinic's patient is a 404.
        return Patient.objects.of_clinic(self.clinic_id)


class DashboardView(ClinicPatientsMixin, TemplateView):
    template_name = "orders/home.html"

    def get_context_data(self, **kwargs):
        patients = self.patients()
        orders = Order.objects.of_clinic(self.clinic_id)
        # A prescriber's drafts to sign; the staff's drafts waiting for any prescriber.
        drafts = orders.filter(status=OrderStatus.DRAFT)
        # The licences to renew: a prescriber's own; the staff's, of every prescriber here.
        today = timezone.localdate()
        # Refills coming due likewise: a prescriber's own prescriptions, or the clinic's.
        if self.prescriber is not None:
            drafts = drafts.filter(signer=self.prescriber)
            licences = licences_to_renew(prescriber_ids=[self.prescriber.pk])
            due = refills_due(self.clinic_id, prescriber_id=self.prescriber.pk, today=today)
        else:
            licences = licences_to_renew(
                prescriber_ids=clinic_prescribers(self.clinic_id).values("pk")
            )
            due = refills_due(self.clinic_id, today=today)
        return super().get_context_data(
            licences_to_renew=licences,
            refills_due=due[:DASHBOARD_ORDERS],
            refills_due_count=len(due),
            today=today,
            clinic=self.clinic,
            drafts=drafts.select_related("prescription__patient", "signer")[:DASHBOARD_ORDERS],
            recent_patients=patients.order_by("-created_at", "-pk")[:DASHBOARD_PATIENTS],
            patient_count=patients.count(),
            recent_orders=orders.select_related("prescription__patient").prefetch_related(
                "prescription__steps"
            )[:DASHBOARD_ORDERS],
            # The pharmacy's questions, waiting for the prescriber's answer.
            questions=orders.filter(status=OrderStatus.ON_HOLD).select_related(
                "prescription__patient"
            )[:DASHBOARD_ORDERS],
            **kwargs,
        )


def _parse_date(text: str) -> datetime.date | None:
    for pattern in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


class PatientListView(ClinicPatientsMixin, ListView):
    template_name = "orders/patient_list.html"
    context_object_name = "patients"
    paginate_by = 25

    def get_queryset(self):
        patients = self.patients()
        self.query = " ".join(self.request.GET.get("q", "").split())[:100]
        if not self.query:
            return patients
        born = _parse_date(self.query)
        if born is not None:
            return patients.filter(date_of_birth=born)
        for word in self.query.split():
            patients = patients.filter(Q(first_name__icontains=word) | Q(last_name__icontains=word))
        return patients

    def get_context_data(self, **kwargs):
        kept = urlencode({"q": self.query}) if self.query else ""  # for the pages' links
        return super().get_context_data(query=self.query, kept=kept, **kwargs)


class PatientDetailView(ClinicPatientsMixin, RecordsAccessMixin, DetailView):
    template_name = "orders/patient_detail.html"
    context_object_name = "patient"
    access_action = AccessAction.VIEWED_PATIENT

    def get_queryset(self):
        return self.patients()

    def get_context_data(self, **kwargs):
        orders = Order.objects.of_clinic(self.clinic_id).filter(prescription__patient=self.object)
        diary = patient_diary(
            patient=self.object, clinic_id=self.clinic_id, today=timezone.localdate()
        )
        return super().get_context_data(
            orders=orders.select_related("prescription__patient"),
            diary=diary,
            diary_suggestions=diary and renew_links(self.object, diary),
            **kwargs,
        )


def renew_links(patient: Patient, diary: PatientDiary) -> list[tuple[Suggestion, str]]:
    """Each suggestion of the diary with its "Renew with changes" link: the order form filled
    from the latest prescription with the suggested schedule or time of day (none for a review,
    or before any order). Nothing is ordered until the prescriber sends the form."""
    order, links = diary.latest_order, []
    for suggestion in diary.suggestions:
        changes = {"schedule": suggestion.schedule, "time_of_day": suggestion.time_of_day}
        url = ""
        if order is not None and any(changes.values()):
            query = urlencode({"from": order.number} | {k: v for k, v in changes.items() if v})
            url = f"{reverse('order_create', args=[patient.pk])}?{query}"
        links.append((suggestion, url))
    return links


class PatientFormView(ClinicPatientsMixin, FormView):
    form_class = PatientForm
    template_name = "orders/patient_form.html"
    patient = None

    def get_form_kwargs(self):
        return {
            **super().get_form_kwargs(),
            "clinic_id": self.clinic_id,
            "instance": self.patient,
        }

    def get_context_data(self, **kwargs):
        if self.patient is None:
            cancel_url = reverse("patient_list")
        else:
            cancel_url = reverse("patient_detail", args=[self.patient.pk])
        return super().get_context_data(patient=self.patient, cancel_url=cancel_url, **kwargs)


class PatientCreateView(PatientFormView):
    def form_valid(self, form):
        patient = patient_create(clinic=self.clinic, actor=self.request.user, **form.patient_fields)
        messages.success(self.request, f"Patient {patient.full_name} added.")
        return redirect("patient_detail", patient.pk)


class PatientUpdateView(PatientFormView):
    @cached_property
    def patient(self):
        return get_object_or_404(self.patients(), pk=self.kwargs["pk"])

    def form_valid(self, form):
        patient_update(patient=self.patient, actor=self.request.user, **form.patient_fields)
        messages.success(self.request, "Patient record saved.")
        return redirect("patient_detail", self.patient.pk)
