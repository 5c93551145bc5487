"""The kernel's models: the people who sign in, who saw a patient's record, and the pieces other
apps' models are built from."""

from .accounts import PasswordResetRequest, User, UserManager, normalize_email_address
from .audit import AccessAction, AccessEvent, AccessEventQuerySet, AppendOnlyError
from .base import PostalAddress, StateField, StatusEvent, state_name

__all__ = [
    "AccessAction",
    "AccessEvent",
    "AccessEventQuerySet",
    "AppendOnlyError",
    "PasswordResetRequest",
    "PostalAddress",
    "StateField",
    "StatusEvent",
    "User",
    "UserManager",
    "normalize_email_address",
    "state_name",
]
