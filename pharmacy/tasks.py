"""Celery tasks of the pharmacy: thin, idempotent wrappers of the services in notifications."""

import logging
import random
from smtplib import SMTPException

from celery import shared_task
from django.conf import settings

from . import notifications

logger = logging.getLogger(__name__)


def backoff(retries: int) -> int:
    """Seconds before retry n: exponential, capped, with full jitter (no thundering herd)."""
    ceiling = min(settings.OUTBOX_RETRY_MAX_DELAY, settings.OUTBOX_RETRY_BASE_DELAY * 2**retries)
    return random.randint(1, max(1, ceiling))


@shared_task(bind=True, max_retries=8)
def send_delivery(self, *, delivery_id: int) -> None:
    try:
        notifications.delivery_send(delivery_id=delivery_id)
    except (SMTPException, OSError) as error:
        if self.request.is_eager:
            # In-process (no broker): leave the row pending for the sweep, never fail the page.
            logger.warning("delivery %s not sent, left for the sweep: %s", delivery_id, error)
            return
        if self.request.retries >= self.max_retries:
            notifications.delivery_fail(delivery_id=delivery_id, error=str(error))
            return
        raise self.retry(exc=error, countdown=backoff(self.request.retries)) from error


@shared_task(bind=True, max_retries=3)
def render_label(self, *, order_id: int, delivery_id: int | None = None) -> None:
    """Render the order's label once (a redelivered task finds it), then queue its email."""
    from orders.models import Order

    order = Order.objects.get(pk=order_id)
    if notifications.latest_label(order) is None:
        try:
            notifications.label_render(order=order)
        except Exception:
            if not self.request.is_eager:
                raise
            # In-process (no broker): the page that made the order ready must not fail; the
            # delivery stays pending and the sweep renders and sends it later.
            logger.exception("label of order %s not rendered, left for the sweep", order_id)
            return
    if delivery_id is not None:
        send_delivery.delay(delivery_id=delivery_id)  # after its label, on the mail queue


@shared_task(
    autoretry_for=(SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_password_reset(*, user_id: int) -> None:
    """Email a password reset link (asked for on the sign-in page's "forgotten" form)."""
    from .forms import PortalPasswordResetForm, send_password_reset_email
    from .models import User

    user = User.objects.select_related("prescriber").get(pk=user_id)
    if user in PortalPasswordResetForm().get_users(user.email):  # still allowed to sign in
        send_password_reset_email(user)


@shared_task
def sweep_deliveries() -> int:
    return notifications.delivery_sweep()


@shared_task(time_limit=600, soft_time_limit=540)
def render_print_job(*, job_id: int) -> None:
    notifications.print_job_render(job_id=job_id)
