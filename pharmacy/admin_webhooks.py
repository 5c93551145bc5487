"""The clinics' webhooks in the admin: staff see the endpoints (never their secrets) and every
delivery with its attempts, and a pharmacist sends a failed one again. Endpoints belong to the
clinics, whose prescribers change them in the portal: here they are read-only."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from core.admin import ReadOnlyInline, ReadOnlyMixin, RecordHistoryAdmin
from core.text import counted

from .models import WebhookAttempt, WebhookDelivery
from .webhooks import webhook_delivery_retry


class WebhookEndpointAdmin(ReadOnlyMixin, RecordHistoryAdmin):
    list_display = ["url", "clinic", "enabled", "failing_since", "created_at"]
    list_filter = ["enabled"]
    list_select_related = ["clinic"]
    search_fields = ["url", "clinic__name"]
    show_full_result_count = False
    # Never the secrets: they are shown to the clinic once, and nowhere else.
    fields = [
        "clinic",
        "url",
        "description",
        "events",
        "enabled",
        "disabled_reason",
        "disabled_at",
        "failing_since",
        "previous_secret_expires_at",
        "created_by",
        "created_at",
    ]
    readonly_fields = fields


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    fields = ["attempted_at", "response_status", "error", "duration_ms"]
    readonly_fields = fields


class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The webhook outbox: each message, its status and attempts; failed ones can be sent
    again (with the same webhook-id)."""

    list_display = [
        "created_at",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
    ]
    list_filter = ["status", "event_type"]
    list_select_related = ["endpoint"]
    search_fields = ["message_id", "endpoint__url"]
    show_full_result_count = False
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ["send_again"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Send selected failed deliveries again", permissions=["change"])
    def send_again(self, request, queryset):
        again = 0
        for delivery in queryset.select_related("endpoint").order_by("pk"):
            try:
                again += webhook_delivery_retry(delivery=delivery, actor=request.user)
            except ValidationError as refused:
                self.message_user(
                    request, f"{delivery.message_id}: {' '.join(refused.messages)}", messages.ERROR
                )
        self.message_user(request, f"{counted(again, 'delivery', 'deliveries')} queued again.")
