"""Quantities as people write them. Pure: no Django, so the pure rules use it too."""

from decimal import Decimal


def quantity_text(value: Decimal) -> str:
    """A Decimal as people write it: 30, 2.5, 0.25 (no exponent, no trailing zeros)."""
    return f"{value.normalize():f}"
