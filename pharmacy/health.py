"""The health of the portal's work, as django-health-check checks for the staff's detailed
health page: the outbox of emails and webhooks and the print jobs. Each check reads its table
in one query (pharmacy/selectors.py) and keeps the figures it read (counts and ages, never an
address, a name or a subject) for the page to show. A backlog that should have gone by now is
a warning (the portal still answers); the library's own checks say when a service is down."""

import dataclasses
from typing import ClassVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone
from health_check import HealthCheck
from health_check.exceptions import ServiceWarning

from .selectors import email_backlog, print_job_backlog, webhook_backlog


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclasses.dataclass
class WorkBacklog(HealthCheck):
    """A table of work: read in the request's own thread (thread-sensitive, as Django's async
    ORM does), so that it sees what the request's connection sees."""

    name: ClassVar[str]
    figures: dict = dataclasses.field(default_factory=dict, repr=False)

    def read(self) -> dict:
        raise NotImplementedError

    def warnings(self) -> list[str]:
        return []

    async def run(self):
        self.figures = await sync_to_async(self.read)()
        if warnings := self.warnings():
            raise ServiceWarning("; ".join(warnings))


def _pending_too_long(figures: dict, what: str) -> list[str]:
    oldest = figures["oldest_pending_seconds"]
    if oldest is not None and oldest > settings.OUTBOX_BACKLOG_WARN_AFTER:
        return [f"the oldest pending {what} has waited {oldest} seconds"]
    return []


@dataclasses.dataclass
class EmailOutbox(WorkBacklog):
    """Emails waiting too long (no worker, the broker or the SMTP server down) or failed (a
    person retries them from the admin's list of deliveries)."""

    name: ClassVar[str] = "emails"

    def read(self) -> dict:
        return email_backlog(now=timezone.now())

    def warnings(self) -> list[str]:
        failed = self.figures["failed"]
        return _pending_too_long(self.figures, "email") + (
            [f"{_plural(failed, 'failed email')} wait for a person"] if failed else []
        )


@dataclasses.dataclass
class WebhookOutbox(WorkBacklog):
    """Webhook messages waiting too long (a delivery retries for WEBHOOK_DISABLE_AFTER while a
    clinic's endpoint is down, so this can also be one clinic's system)."""

    name: ClassVar[str] = "webhooks"

    def read(self) -> dict:
        return webhook_backlog(now=timezone.now())

    def warnings(self) -> list[str]:
        return _pending_too_long(self.figures, "webhook delivery")


@dataclasses.dataclass
class PrintJobs(WorkBacklog):
    """Print jobs that failed (a person prints them again)."""

    name: ClassVar[str] = "print_jobs"

    def read(self) -> dict:
        return print_job_backlog()

    def warnings(self) -> list[str]:
        failed = self.figures["failed"]
        return [f"{_plural(failed, 'failed print job')}"] if failed else []
