"""The one mechanism behind every status pipeline (prescriber accounts, orders, and later
batches): a table of allowed moves, a check of who may make the move, the row locked while it
changes, and an event row written in the same transaction."""

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from .models import StatusEvent

Stateful = TypeVar("Stateful", bound=models.Model)


def apply_transition(
    *,
    instance: Stateful,
    to_status: Enum,
    actor,
    transitions: dict,
    may: Callable[[object, Stateful, object], bool],
    event_model: type[StatusEvent],
    refused: str,
    note: str = "",
    changes: dict | None = None,
    event_fields: dict | None = None,
) -> Stateful:
    """Move `instance` to `to_status`, or raise.

    transitions maps (from, to) to what a move needs (a permission, a set of roles); `may`
    decides whether the actor has it. `refused` words an impossible move, with {what}
    ("approved") and {to} filled in. `changes` are other fields of the row saved with the new
    status (a tracking number); `event_fields` go onto the event row (a signature). Returns the
    locked, updated row.
    """
    status_type = type(to_status)
    with transaction.atomic():
        locked = type(instance).objects.select_for_update().get(pk=instance.pk)
        from_status = status_type(locked.status)
        needs = transitions.get((from_status, to_status))
        if needs is None:
            raise ValidationError(
                refused.format(what=from_status.label.lower(), to=to_status.label.lower()),
                code="invalid_transition",
            )
        if not may(actor, locked, needs):
            raise PermissionDenied("You may not make this change.")
        changes = {"status": to_status, "status_changed_at": timezone.now(), **(changes or {})}
        for name, value in changes.items():
            setattr(locked, name, value)
        locked._history_user = actor
        locked.save(update_fields=list(changes))
        event_model.record(
            locked, actor=actor, from_status=from_status, to_status=to_status, note=note,
            **(event_fields or {}),
        )  # fmt: skip
    return locked


def refusal_text(error: ValidationError | PermissionDenied) -> str:
    """What to tell the person whose move was refused."""
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error) or "You may not make this change."
