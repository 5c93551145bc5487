"""Text that services check."""

from django.core.exceptions import ValidationError


def required_text(text: str | None, what: str) -> str:
    """The text without surrounding spaces; refused with "Write the <what>." when empty."""
    text = (text or "").strip()
    if not text:
        raise ValidationError(f"Write the {what}.", code="required")
    return text
