"""The clinic's webhooks in the portal: its prescribers register endpoints of their systems,
change, turn off and remove them, rotate their secrets, and follow each endpoint's recent
deliveries with every attempt, sending a failed one again. Clinic staff do not see them, and
another clinic's endpoint or delivery is a 404.

A secret is shown once: the page that follows its making (a new endpoint, a rotation) takes it
out of the session, where the making put it (the session is kept on the server, next to the
endpoint's row that holds it anyway), and it is never shown again."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import FormView, TemplateView

from prescribers.access import PrescriberRequiredMixin

from .models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .models import WebhookEventType as E
from .webhooks import (
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
    webhook_delivery_retry,
)

# The session key of a secret to show once, with the endpoint it belongs to.
SECRET_TO_SHOW = "webhook_secret_to_show"
# The deliveries an endpoint's page lists, newest first.
RECENT_DELIVERIES = 25


class WebhookEndpointForm(forms.Form):
    url = forms.URLField(
        label="URL",
        max_length=500,
        assume_scheme="https",
        help_text="Where your system receives the messages: an https:// address on the internet.",
    )
    description = forms.CharField(
        max_length=200, required=False, help_text="What receives them, e.g. “Clinic EHR”."
    )
    events = forms.MultipleChoiceField(
        label="Events",
        choices=E.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Each event is one signed message. Messages carry order numbers, statuses and "
        "what the pharmacy said; never a patient's name, birth date, address or diagnosis.",
    )


class WebhookEndpointChangeForm(WebhookEndpointForm):
    enabled = forms.BooleanField(
        label="Turned on",
        required=False,
        help_text="Turned off, the endpoint receives nothing; messages not sent yet fail, to "
        "send again later.",
    )


class ClinicWebhooksMixin(PrescriberRequiredMixin):
    """Every query filtered by the clinic acted for."""

    def endpoints(self):
        return WebhookEndpoint.objects.filter(clinic_id=self.clinic_id)

    @cached_property
    def endpoint(self) -> WebhookEndpoint:
        return get_object_or_404(self.endpoints(), pk=self.kwargs["pk"])

    def show_secret_once(self, endpoint: WebhookEndpoint, secret: str) -> None:
        self.request.session[SECRET_TO_SHOW] = {"endpoint": endpoint.pk, "secret": secret}


def _refused_into(form: forms.Form, refused: ValidationError) -> None:
    if hasattr(refused, "error_dict"):
        for field, errors in refused.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, refused)


class WebhookEndpointListView(ClinicWebhooksMixin, TemplateView):
    template_name = "pharmacy/webhooks/endpoint_list.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(endpoints=self.endpoints(), **kwargs)


class WebhookEndpointCreateView(ClinicWebhooksMixin, FormView):
    form_class = WebhookEndpointForm
    template_name = "pharmacy/webhooks/endpoint_form.html"
    initial = {"events": E.values}

    def form_valid(self, form):
        try:
            endpoint = endpoint_create(
                actor=self.request.user, clinic_id=self.clinic_id, **form.cleaned_data
            )
        except ValidationError as refused:
            _refused_into(form, refused)
            return self.form_invalid(form)
        self.show_secret_once(endpoint, endpoint.secret)
        messages.success(self.request, "Endpoint added: copy its secret now.")
        return redirect("webhook_endpoint_detail", endpoint.pk)


class WebhookEndpointUpdateView(ClinicWebhooksMixin, FormView):
    form_class = WebhookEndpointChangeForm
    template_name = "pharmacy/webhooks/endpoint_form.html"

    def get_initial(self):
        endpoint = self.endpoint
        return {
            "url": endpoint.url,
            "description": endpoint.description,
            "events": endpoint.events,
            "enabled": endpoint.enabled,
        }

    def get_context_data(self, **kwargs):
        return super().get_context_data(editing=self.endpoint, **kwargs)

    def form_valid(self, form):
        try:
            endpoint = endpoint_update(
                actor=self.request.user, endpoint=self.endpoint, **form.cleaned_data
            )
        except ValidationError as refused:
            _refused_into(form, refused)
            return self.form_invalid(form)
        messages.success(self.request, "Endpoint saved.")
        return redirect("webhook_endpoint_detail", endpoint.pk)


class WebhookEndpointDetailView(ClinicWebhooksMixin, TemplateView):
    """The endpoint, its secret once after it was made, and its recent deliveries with their
    attempts (three queries however many there are)."""

    template_name = "pharmacy/webhooks/endpoint_detail.html"

    def get_context_data(self, **kwargs):
        endpoint = self.endpoint
        shown = self.request.session.get(SECRET_TO_SHOW)
        secret = None
        if shown is not None and shown.get("endpoint") == endpoint.pk:
            secret = self.request.session.pop(SECRET_TO_SHOW)["secret"]
        deliveries = endpoint.deliveries.prefetch_related(
            Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("attempted_at", "pk"))
        )[:RECENT_DELIVERIES]
        return super().get_context_data(
            endpoint=endpoint,
            secret=secret,
            deliveries=deliveries,
            failed=DeliveryStatus.FAILED,
            now=timezone.now(),
            **kwargs,
        )


class WebhookEndpointRotateView(ClinicWebhooksMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        secret = endpoint_rotate_secret(actor=request.user, endpoint=self.endpoint)
        self.show_secret_once(self.endpoint, secret)
        hours = round(settings.WEBHOOK_SECRET_ROTATION_GRACE.total_seconds() / 3600)
        messages.success(
            request, f"New secret made: copy it now. The old one signs too for {hours} hours."
        )
        return redirect("webhook_endpoint_detail", pk)


class WebhookEndpointDeleteView(ClinicWebhooksMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        url = self.endpoint.url
        endpoint_delete(actor=request.user, endpoint=self.endpoint)
        messages.success(request, f"Endpoint {url} removed, with its deliveries.")
        return redirect("webhook_endpoint_list")


class WebhookDeliveryResendView(ClinicWebhooksMixin, View):
    """Send a failed delivery again (the same webhook-id)."""

    http_method_names = ["post"]

    def post(self, request, pk):
        clinic_deliveries = WebhookDelivery.objects.filter(endpoint__clinic_id=self.clinic_id)
        delivery = get_object_or_404(clinic_deliveries.select_related("endpoint"), pk=pk)
        try:
            again = webhook_delivery_retry(delivery=delivery, actor=request.user)
        except ValidationError as refused:
            messages.error(request, " ".join(refused.messages))
        else:
            if again:
                messages.success(request, "The message goes again within seconds.")
            else:
                messages.info(request, "That message has not failed: it was sent or is on its way.")
        return redirect("webhook_endpoint_detail", delivery.endpoint_id)
