"""The partner API's resources of the orders app: patients, the dose check, orders with their
timeline, cancelling, refills. The same services and rules as the portal's pages; every query
is limited to the key's clinic (another clinic's record answers 404), and every answer that
shows a patient's record is an access event.

Orders sent with a key that does not sign are drafts that wait for a prescriber's signature in
the portal; a key with the "sign" scope signs them as its owner (README, "Partner API")."""

import contextlib
import uuid

import django_filters
from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import KnownQueryParameters
from core.audit import record_access, record_access_bulk
from core.models import AccessAction
from core.problems import Conflict, Problem
from core.state_machine import refusal_text
from prescribers.api_auth import IDEMPOTENCY_HEADER, idempotent
from prescribers.selectors import clinic_prescribers

from .checks import Catalogue, finding_key, finding_view
from .dose_check import dose_check_answer
from .models import Order, OrderKind, OrderStatus, Patient, Prescription
from .selectors import clinic_patient
from .serializers import (
    CancelSerializer,
    DoseCheckResultSerializer,
    DoseCheckSerializer,
    OrderCreateSerializer,
    OrderEventSerializer,
    OrderSerializer,
    PatientSerializer,
    RefillCreateSerializer,
)
from .services import (
    PrescriptionNotAccepted,
    SignerRefused,
    order_cancel,
    order_submit,
    patient_create,
    patient_update,
    prescription_refill,
)

# An Idempotency-Key is the client's; the order's own key is derived from it and the API key,
# so that two clinics' systems choosing the same text never meet.
IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0e8e5c-3f5e-4c1e-9a53-3d1f0f0b6a10")
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=True,
    description="A key of your choosing (a UUID is best), the same for each retry of this "
    "request: a retry gets the first answer; another request with it is refused (422).",
)  # fmt: skip


ORDER_RELATED = ("prescription", "signer")


class ByNewest(CursorPagination):
    """Cursor pages, newest first: stable while records are added (`next` and `previous` are
    links). A `limit` that is not a whole number from 1 to 200 is refused, not ignored."""

    ordering = "-pk"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_page_size(self, request):
        limits = request.query_params.getlist(self.page_size_query_param)
        if not limits:
            return self.page_size
        if len(limits) > 1 or not limits[0].isdigit() or not 1 <= int(limits[0]) <= 200:
            raise serializers.ValidationError(
                {self.page_size_query_param: "Send one whole number from 1 to 200."}
            )
        return int(limits[0])


class ByOldest(ByNewest):
    ordering = "pk"


class ClinicKeyMixin(KnownQueryParameters):
    """`self.clinic_id`: the key's clinic, which every query is limited to. A list takes its
    filters, `cursor` and `limit`; nothing else takes a query parameter."""

    def query_parameters(self) -> set[str]:
        if getattr(self, "action", None) == "list":
            return {*self.filterset_class.base_filters, "cursor", "limit"}
        return set()

    @property
    def clinic_id(self) -> int:
        return self.request.auth.clinic_id

    @property
    def key(self):
        return self.request.auth


class RecordsShownMixin:
    """A list or a record shown is an access event for each record (one INSERT for a page)."""

    access_action: AccessAction

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        model = self.get_queryset().model
        shown = [model(pk=row["id"]) for row in response.data["results"]]
        record_access_bulk(request, self.access_action, shown)
        return response

    def retrieve(self, request, *args, **kwargs):
        record = self.get_object()
        record_access(request, self.access_action, record)
        return Response(self.get_serializer(record).data)


@contextlib.contextmanager
def _refusals_as_problems():
    """An order or a refill refused: by the rules (422 with the findings), or for its signer
    (400 on `signer_id`)."""
    try:
        yield
    except PrescriptionNotAccepted as refused:
        raise Problem(
            "prescription-not-accepted",
            status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail=str(refused),
            findings=[finding_view(f) for f in refused.findings],
            unacknowledged=[finding_key(f) for f in refused.unacknowledged],
        ) from refused
    except SignerRefused as refused:
        raise serializers.ValidationError({"signer_id": refused.messages}) from refused


def signing_of(key, signer_id: int | None, clinic_id: int):
    """(signer, draft) for an order sent with `key`: a key that signs signs as its owner; any
    other order is a draft for `signer_id` (a prescriber of the clinic) or the key's owner."""
    signer = None
    if signer_id is not None:
        signer = clinic_prescribers(clinic_id).filter(pk=signer_id).first()
        if signer is None:
            raise serializers.ValidationError(
                {"signer_id": "No prescriber of this clinic has this id."}
            )
    draft = not (key.can_sign and (signer is None or signer.pk == key.owner_id))
    return signer, draft


def order_key(request) -> uuid.UUID:
    """The order's own idempotency key: from the API key, the address and the header."""
    sent = request.headers[IDEMPOTENCY_HEADER].strip()
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{request.auth.pk}:{request.path}:{sent}")


def _order_answer(
    request, order: Order, *, code=status.HTTP_200_OK, read_again: bool = True
) -> Response:
    """The order as it is now, with its address: read again after a change (`read_again`), or
    as the service wrote it, in this transaction, when it made the order."""
    if read_again:
        order = Order.objects.select_related(*ORDER_RELATED).get(pk=order.pk)
    record_access(request, AccessAction.VIEWED_ORDER, order)
    location = request.build_absolute_uri(reverse("api-order-detail", args=[order.pk]))
    return Response(OrderSerializer(order).data, status=code, headers={"Location": location})


class IdFilter(django_filters.NumberFilter):
    """A record's id: a whole number that fits its column (PostgreSQL refuses larger ones)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=2**63 - 1, **kwargs)


class PatientFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="by_name", help_text="Words of the first or last name.")
    date_of_birth = django_filters.DateFilter()

    class Meta:
        model = Patient
        fields = ["q", "date_of_birth"]

    def by_name(self, patients, name, value):
        for word in value.split()[:5]:
            patients = patients.filter(Q(first_name__icontains=word) | Q(last_name__icontains=word))
        return patients


@extend_schema_view(
    list=extend_schema(summary="Search the clinic's patients"),
    create=extend_schema(summary="Add a patient"),
    retrieve=extend_schema(summary="A patient's record"),
    partial_update=extend_schema(summary="Change a patient's record"),
)
class PatientViewSet(
    ClinicKeyMixin, RecordsShownMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
    mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet,
):  # fmt: skip
    queryset = Patient.objects.none()  # the schema's model; get_queryset is the clinic's
    access_action = AccessAction.VIEWED_PATIENT
    lookup_value_converter = "int"
    serializer_class = PatientSerializer
    pagination_class = ByOldest
    filterset_class = PatientFilter
    http_method_names = ["get", "post", "patch"]

    def get_queryset(self):
        return Patient.objects.of_clinic(self.clinic_id)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "clinic_id": self.clinic_id}

    def perform_create(self, serializer):
        serializer.instance = patient_create(
            clinic=self.key.clinic, actor=self.request.user, **serializer.validated_data
        )
        record_access(self.request, self.access_action, serializer.instance)

    def perform_update(self, serializer):
        serializer.instance = patient_update(
            patient=serializer.instance, actor=self.request.user, **serializer.validated_data
        )
        record_access(self.request, self.access_action, serializer.instance)


class DoseCheckView(ClinicKeyMixin, APIView):
    """Every rule on a regimen, as the order form checks it while the prescriber types: for a
    patient of the clinic (`patient_id`, their record and open orders as they are now) or for
    facts sent inline (`patient`). Writes nothing."""

    @extend_schema(
        summary="Check a dose",
        request=DoseCheckSerializer,
        responses={200: DoseCheckResultSerializer},
    )
    def post(self, request):
        check = DoseCheckSerializer(data=request.data)
        check.is_valid(raise_exception=True)
        data = check.validated_data
        patient = None
        if data.get("patient_id") is not None:
            patient = get_object_or_404(self.get_patients(), pk=data["patient_id"])
            record_access(request, AccessAction.VIEWED_PATIENT, patient)  # the rules read it
        answer = dose_check_answer(
            regimen=check.regimen(), diagnosis_codes=data["diagnosis_codes"],
            catalogue=Catalogue.current(), today=timezone.localdate(), patient=patient,
            prescriber=self.key.owner, facts=check.facts(),
        )  # fmt: skip
        return Response(answer)

    def get_patients(self):
        return Patient.objects.of_clinic(self.clinic_id)


class OrderFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=OrderStatus.choices)
    kind = django_filters.ChoiceFilter(choices=OrderKind.choices)
    patient_id = IdFilter(field_name="prescription__patient_id")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Order
        fields = ["status", "kind", "patient_id", "created_after", "created_before"]


@extend_schema_view(
    list=extend_schema(summary="The clinic's orders"),
    retrieve=extend_schema(summary="An order"),
)
class OrderViewSet(
    ClinicKeyMixin, RecordsShownMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    queryset = Order.objects.none()
    access_action = AccessAction.VIEWED_ORDER
    lookup_value_converter = "int"
    serializer_class = OrderSerializer
    pagination_class = ByNewest
    filterset_class = OrderFilter

    def get_queryset(self):
        return (
            Order.objects.of_clinic(self.clinic_id)
            .select_related(*ORDER_RELATED)
            .prefetch_related("prescription__steps")
        )

    @extend_schema(
        summary="Order LDN: a new prescription and its first fill",
        request=OrderCreateSerializer,
        responses={201: OrderSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    def create(self, request):
        # The catalogue is this process's copy, as for the order form: read before the
        # idempotency transaction, inside which it would be read from the database every time.
        catalogue = Catalogue.current()
        return idempotent(request, lambda: self._create(request, catalogue))

    def _create(self, request, catalogue: Catalogue) -> Response:
        sent = OrderCreateSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        data = sent.validated_data
        patient = clinic_patient(self.clinic_id, data["patient_id"])
        if patient is None:
            raise serializers.ValidationError(
                {"patient_id": "No patient of this clinic has this id."}
            )
        signer, draft = signing_of(self.key, data["signer_id"], self.clinic_id)
        with _refusals_as_problems():
            order = order_submit(
                actor=request.user, patient=patient, regimen=sent.regimen(),
                diagnosis_codes=data["diagnosis_codes"],
                reason_for_compounding=data["reason_for_compounding"], ship_to=data["ship_to"],
                needed_by=data["needed_by"], acknowledged=data["acknowledged"],
                reason=data["reason"], signer=signer, draft=draft, via=f"API key {self.key}",
                idempotency_key=order_key(request), catalogue=catalogue,
            )  # fmt: skip
        return _order_answer(request, order, code=status.HTTP_201_CREATED, read_again=False)

    @extend_schema(
        summary="Cancel an order", request=CancelSerializer, responses={200: OrderSerializer}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        order = self.get_object()
        sent = CancelSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        try:
            order_cancel(order=order, actor=request.user, reason=sent.validated_data["reason"])
        except (ValidationError, PermissionDenied) as refused:
            raise Conflict(refusal_text(refused)) from refused
        return _order_answer(request, order)

    @extend_schema(summary="The order's timeline", responses={200: OrderEventSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def timeline(self, request, pk=None):
        order = self.get_object()
        record_access(request, AccessAction.VIEWED_ORDER, order)
        events = order.events.select_related("actor")
        return Response(OrderEventSerializer(events, many=True).data)


class RefillCreateView(ClinicKeyMixin, APIView):
    """The next fill of a prescription of the clinic: every rule runs again (as the portal's
    refill page)."""

    @extend_schema(
        summary="Request a refill",
        request=RefillCreateSerializer,
        responses={201: OrderSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    def post(self, request, pk):
        prescriptions = Prescription.objects.filter(patient__clinic_id=self.clinic_id)
        prescription = get_object_or_404(prescriptions.select_related("patient"), pk=pk)
        return idempotent(request, lambda: self._refill(request, prescription))

    def _refill(self, request, prescription) -> Response:
        sent = RefillCreateSerializer(data=request.data)
        sent.is_valid(raise_exception=True)
        data = sent.validated_data
        signer, draft = signing_of(self.key, data["signer_id"], self.clinic_id)
        with _refusals_as_problems():
            order = prescription_refill(
                prescription=prescription, actor=request.user, ship_to=data["ship_to"],
                needed_by=data["needed_by"], retitrate=data["retitrate"],
                acknowledged=data["acknowledged"], reason=data["reason"], signer=signer,
                draft=draft, via=f"API key {self.key}", idempotency_key=order_key(request),
            )  # fmt: skip
        return _order_answer(request, order, code=status.HTTP_201_CREATED)
