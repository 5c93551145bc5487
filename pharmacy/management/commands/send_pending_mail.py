"""Re-queue outbox rows left pending or sending too long, and publish the webhooks of the orders'
events (the sweep that Celery beat runs every minute in production; run it from cron with the
embedded default)."""

from django.core.management.base import BaseCommand

from pharmacy.tasks import delivery_sweep


class Command(BaseCommand):
    help = "Send (or re-queue) emails and webhooks of the outbox that are waiting too long."

    def handle(self, *args, **options):
        queued = delivery_sweep()
        self.stdout.write(f"{queued} delivery(ies) queued.")
