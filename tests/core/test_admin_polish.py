"""The small things staff notice: a refused request is one line in the log (no traceback), and
the browser finds the icon at /favicon.ico."""

import logging

import pytest
from django.urls import reverse

from core.log_filters import ClientErrorsWithoutTraceback

pytestmark = pytest.mark.django_db


def console_handler() -> logging.Handler:
    handlers = logging.getLogger().handlers
    (handler,) = [
        h for h in handlers if any(isinstance(f, ClientErrorsWithoutTraceback) for f in h.filters)
    ]
    return handler


def record_with_traceback(status: int) -> logging.LogRecord:
    try:
        raise RuntimeError("the reason")
    except RuntimeError as error:
        exc_info = (type(error), error, error.__traceback__)
        record = logging.LogRecord(
            "django.request", logging.WARNING, __file__, 1, "Refused: /x/", (), exc_info
        )
    record.status_code = status
    return record


def test_a_refused_request_is_one_line_in_the_log_and_a_server_error_keeps_its_traceback(
    client, pharmacist, caplog
):
    handler = console_handler()
    client.force_login(pharmacist)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(reverse("patient_list")).status_code == 403  # staff: not the portal
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert handler.format(record).endswith(
        " WARNING django.request Forbidden (Permission denied): /patients/"
    )
    assert len(handler.format(record).splitlines()) == 1

    for status, traceback in ((403, False), (404, False), (500, True)):
        record = record_with_traceback(status)
        assert handler.filter(record)
        assert ("Traceback" in handler.format(record)) is traceback


def test_the_browser_finds_the_icon_at_favicon_ico(client):
    answer = client.get("/favicon.ico")
    assert (answer.status_code, answer["Location"]) == (301, "/static/favicon.svg")
