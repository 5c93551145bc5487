import pytest
from django.core.exceptions import ValidationError

from prescribers.npi import luhn_check_digit, npi_check_digit, validate_npi


@pytest.mark.parametrize(
    "npi",
    ["1234567893", "1245319599", "2000000002", " 1234567893 "],
)
def test_valid_npis_pass(npi):
    validate_npi(npi)


@pytest.mark.parametrize(
    ("npi", "code"),
    [
        ("1234567890", "npi.check_digit"),  # CMS: 1234567890 fails its check digit
        ("1234567894", "npi.check_digit"),
        ("3234567893", "npi.first_digit"),
        ("0234567893", "npi.first_digit"),
        ("123456789", "npi.format"),
        ("12345678933", "npi.format"),
        ("12345678a3", "npi.format"),
        (
            "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13",
            "npi.format",
        ),  # full-width
        ("", "npi.format"),
    ],
)
def test_invalid_npis_say_why(npi, code):
    with pytest.raises(ValidationError) as caught:
        validate_npi(npi)
    assert caught.value.code == code


def test_check_digit_matches_cms_example():
    # CMS worked example: 123456789 with prefix 80840 gives check digit 3.
    assert npi_check_digit("123456789") == 3
    assert luhn_check_digit("80840123456789") == 3


def test_every_single_digit_typo_is_caught():
    valid = "1234567893"
    for position in range(10):
        for digit in "0123456789":
            typo = valid[:position] + digit + valid[position + 1 :]
            if typo == valid:
                continue
            with pytest.raises(ValidationError):
                validate_npi(typo)
