"""The pharmacy's pages outside the admin: the clinic's dashboard with the pharmacy's recall
notices, the notices themselves, the label of an order for its prescriber, the health check
(django-health-check) and the metrics for Prometheus."""

import hmac
from functools import partial

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import (
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.generic import DetailView, ListView
from health_check import Cache, Database, Storage
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceWarning
from health_check.views import HealthCheckView
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis as AsyncRedis

from core.audit import record_access, record_when_shown
from core.models import AccessAction
from core.second_factor import is_verified
from core.sessions import PATIENT
from core.sessions import ROLE as SESSION_ROLE
from orders.order_views import ClinicOrdersMixin
from orders.views import DashboardView
from prescribers.access import ClinicMemberRequiredMixin

from .health import EmailOutbox, PrintJobs, WebhookOutbox, WorkBacklog
from .metrics import broker_redis_url, scrape
from .recalls import recall_notice_acknowledge
from .selectors import clinic_recall_notices, latest_label, recall_notice_dispenses

DASHBOARD_NOTICES = 10


def home(request):
    """Prescribers and clinic staff land on their dashboard, patients on their own page; the
    pharmacy works in the admin."""
    user = request.user
    if user.is_authenticated and user.portal_prescriber is None and user.is_staff:
        return redirect("admin:index")
    if user.is_authenticated and request.session.get(SESSION_ROLE) == PATIENT:
        return redirect("patient_home")
    return InboxView.as_view()(request)


class InboxView(DashboardView):
    """The dashboard, led by the recalls the clinic has not yet confirmed telling its patients
    about."""

    template_name = "pharmacy/home.html"

    def get_context_data(self, **kwargs):
        notices = clinic_recall_notices(self.clinic_id).filter(acknowledged_at__isnull=True)
        return super().get_context_data(recall_notices=notices[:DASHBOARD_NOTICES], **kwargs)


class RecallNoticesMixin(ClinicMemberRequiredMixin):
    def get_queryset(self):
        # Another clinic's notice is a 404.
        return clinic_recall_notices(self.clinic_id)


class RecallNoticeListView(RecallNoticesMixin, ListView):
    template_name = "pharmacy/recall_notice_list.html"
    context_object_name = "notices"
    paginate_by = 25


class RecallNoticeDetailView(RecallNoticesMixin, DetailView):
    """What the recall reaches in this clinic (its patients, by order), and the confirmation
    that they were told. Seeing it is an access event on the recall, as in the admin: the
    patient's access history lists it."""

    template_name = "pharmacy/recall_notice_detail.html"
    context_object_name = "notice"

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        record_when_shown(request, response, AccessAction.VIEWED_RECALL, self.object.recall)
        return response

    def get_context_data(self, **kwargs):
        return super().get_context_data(dispenses=recall_notice_dispenses(self.object), **kwargs)

    def post(self, request, pk):
        notice = get_object_or_404(self.get_queryset(), pk=pk)
        try:
            confirmed = recall_notice_acknowledge(notice=notice, actor=request.user)
        except PermissionDenied as refused:
            messages.error(request, str(refused))
        else:
            if confirmed.acknowledged_by_id == request.user.pk:
                messages.success(request, "Thank you: the pharmacy sees that your clinic has "
                                 "told its patients.")  # fmt: skip
            else:
                messages.info(request, f"{confirmed.acknowledged_by.get_full_name()} already "
                              f"confirmed this notice.")  # fmt: skip
        return redirect("recall_notice_detail", pk)


class OrderLabelView(ClinicOrdersMixin, View):
    """The latest label PDF of an order of the prescriber's clinic."""

    def get(self, request, pk):
        order = get_object_or_404(self.orders(), pk=pk)
        document = latest_label(order)
        if document is None:
            raise Http404("No label yet.")
        response = FileResponse(
            document.file.open("rb"),
            as_attachment=True,
            filename=f"label-{order.number}.pdf",
            content_type="application/pdf",
        )
        record_access(request, AccessAction.DOWNLOADED_LABEL, document)
        return response


def _verified_staff_refusal(request):
    """The health detail's door, as the admin's: a sign-in (and the second factor) for anyone
    not signed in as staff who passed it, a 403 for a signed-in prescriber or patient."""
    user = request.user
    if user.is_authenticated and not user.is_staff:
        raise PermissionDenied
    if not (user.is_active and user.is_staff and is_verified(user)):
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    return None


# The broker's check gives up before the library's own limit (5 seconds) does.
TIMEOUTS = {"socket_connect_timeout": 3, "socket_timeout": 3}


class HealthView(HealthCheckView):
    """For the load balancer: 200 while the database answers, 503 when it does not, without
    signing in, so it says nothing else (no service, no error text, nothing about anyone)."""

    checks = (Database,)

    async def get(self, request, *args, **kwargs):
        await super().get(request, *args, **kwargs)  # runs the checks (self.results)
        if any(result.error for result in self.results):
            return JsonResponse({"database": "unreachable"}, status=503)
        return JsonResponse({"database": "ok"})


class HealthDetailView(HealthCheckView):
    """For the pharmacy's staff (signed in, second factor passed): every service the portal
    uses and the backlog of its work, in counts and ages (README, "Health and metrics"). 503
    when a service is down; a backlog that should have gone by now is a warning (200)."""

    @property
    def checks(self):
        broker = broker_redis_url()
        return (
            Database,
            Cache,
            Storage,
            *(
                [(Redis, {"client_factory": partial(AsyncRedis.from_url, broker, **TIMEOUTS)})]
                if broker
                else []
            ),
            EmailOutbox,
            WebhookOutbox,
            PrintJobs,
        )

    async def dispatch(self, request, *args, **kwargs):
        if refusal := await sync_to_async(_verified_staff_refusal)(request):
            return refusal
        return await super().dispatch(request, *args, **kwargs)

    async def get(self, request, *args, **kwargs):
        await super().get(request, *args, **kwargs)  # runs the checks (self.results)
        errors = [result.error for result in self.results if result.error]
        down = any(not isinstance(error, ServiceWarning) for error in errors)
        answer = {
            "status": "unavailable" if down else "warning" if errors else "ok",
            "checks": {
                repr(result.check): str(result.error) if result.error else "OK"
                for result in self.results
            },
            **{
                result.check.name: result.check.figures
                for result in self.results
                if isinstance(result.check, WorkBacklog)
            },
        }
        return JsonResponse(answer, status=503 if down else 200)


@never_cache
def metrics(request):
    """For Prometheus: only with the bearer token of METRICS_TOKEN (compared in constant time),
    and not there at all (404) when none is configured."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("A bearer token is needed.", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(scrape(), content_type=CONTENT_TYPE_LATEST)
