"""National Provider Identifier check (pure, no database).

Source: CMS, "Requirements for NPI check digit": 10 digits, the first 1 or 2, the last a Luhn
check digit computed over the prefix 80840 followed by the first nine digits.
"""

from django.core.exceptions import ValidationError

NPI_SOURCE = "CMS NPI standard: Luhn check digit over 80840 + first 9 digits"
NPI_CARD_ISSUER_PREFIX = "80840"


def luhn_check_digit(payload: str) -> int:
    """The digit that makes payload + digit pass the Luhn (mod 10) check."""
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:  # every second digit from the right, starting next to the check
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def npi_check_digit(first_nine: str) -> int:
    return luhn_check_digit(NPI_CARD_ISSUER_PREFIX + first_nine)


def validate_npi(value: str) -> None:
    """Raise ValidationError with a message that says what is wrong with this NPI."""
    npi = (value or "").strip()
    if len(npi) != 10 or not npi.isascii() or not npi.isdigit():
        raise ValidationError("An NPI is exactly 10 digits.", code="npi.format")
    if npi[0] not in "12":
        raise ValidationError("An NPI starts with 1 or 2.", code="npi.first_digit")
    if int(npi[-1]) != npi_check_digit(npi[:9]):
        raise ValidationError(
            "This NPI fails its check digit; please check it for a typing error.",
            code="npi.check_digit",
        )
