from smtplib import SMTPException

from celery import shared_task


@shared_task(
    autoretry_for=(SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_prescriber_decision(*, prescriber_id: int, status: str) -> None:
    """Email a prescriber the pharmacy's decision on their account."""
    from .emails import send_decision_email
    from .models import Prescriber

    prescriber = Prescriber.objects.select_related("user", "clinic").get(pk=prescriber_id)
    send_decision_email(prescriber=prescriber, status=status)
