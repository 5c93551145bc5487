"""Recording who saw a patient's record (core.models.AccessEvent), and finding those records
again for one patient.

Pages and files that show protected health information call record_access (one record) or
record_access_bulk (the orders of a label print: one INSERT). A page records only once it was
rendered with a 200: a 404 or 403, a redirect or a page that failed to render writes nothing.
The description of a record is its number ("Order LDN-000123"), never a name or a birth date."""

from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model

from .auth import client_ip
from .models import AccessAction, AccessEvent

_USER_AGENT_LENGTH = AccessEvent._meta.get_field("user_agent").max_length
_PATH_LENGTH = AccessEvent._meta.get_field("path").max_length


def describe(obj: Model) -> str:
    """The record's number, in the words staff use; never a patient's name or date of birth. A
    model that has a number of its own says it with an `access_description` property."""
    description = getattr(obj, "access_description", None)
    if description is not None:
        return description
    return f"{obj._meta.verbose_name.capitalize()} {obj.pk}"


def _event(request, action: AccessAction, obj: Model, record_count: int | None) -> AccessEvent:
    user = request.user
    return AccessEvent(
        user=user,
        user_email=user.email,
        action=action,
        # Cached per process by Django: no query once the model was seen.
        content_type=ContentType.objects.get_for_model(obj),
        object_id=obj.pk,
        object_description=describe(obj),
        record_count=record_count,
        client_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_LENGTH],
        # The path only: a query string may carry what someone typed into a search box.
        path=request.path[:_PATH_LENGTH],
    )


def record_access(request, action: AccessAction, obj: Model, *,
                  record_count: int | None = None) -> AccessEvent:  # fmt: skip
    """One access event: request.user saw obj (a list or an export: of record_count patients)."""
    event = _event(request, action, obj, record_count)
    event.save()
    return event


def record_access_bulk(request, action: AccessAction, objects: Iterable[Model]) -> list:
    """An access event for each of objects, written in one INSERT."""
    events = [_event(request, action, obj, None) for obj in objects]
    return AccessEvent.objects.bulk_create(events) if events else []


def record_when_shown(request, response, action: AccessAction, obj: Model, *,
                      record_count: int | None = None) -> None:  # fmt: skip
    """Record that a GET answered 200 showed obj: a page once it has been rendered, a file at
    once. Anything else (a refusal, a redirect, a form posted) writes nothing."""
    if request.method != "GET" or response.status_code != 200:
        return

    def record(_rendered=None):
        record_access(request, action, obj, record_count=record_count)

    if hasattr(response, "add_post_render_callback"):
        response.add_post_render_callback(record)  # at once if it is already rendered
    else:
        record()


class RecordsAccessMixin:
    """For a detail view of a patient's record: a page shown writes an access event."""

    access_action: AccessAction

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        record_when_shown(request, response, self.access_action, self.object)
        return response
