"""Text that services check, and counts and durations as people write them."""

import datetime

from django.core.exceptions import ValidationError


def required_text(text: str | None, what: str) -> str:
    """The text without surrounding spaces; refused with "Write the <what>." when empty."""
    text = (text or "").strip()
    if not text:
        raise ValidationError(f"Write the {what}.", code="required")
    return text


def counted(count: int, one: str, many: str) -> str:
    """ "1 prescriber approved", "2 prescribers approved": the noun agrees with the count."""
    return f"{count} {one if count == 1 else many}"


def duration_text(elapsed: datetime.timedelta) -> str:
    """ "3 d 4 h", "5 h 12 min", "7 min": how long, as people read it."""
    minutes = int(elapsed.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
