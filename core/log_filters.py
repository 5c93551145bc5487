"""Logging filters for the portal's log records."""

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """A refused request (403, 404, 400) is an ordinary answer, logged as one line: Django
    attaches the exception that made it (PermissionDenied, Http404), and its traceback would
    bury the log's real errors. Server errors keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is not None and status < 500:
            record.exc_info, record.exc_text = None, None
        return True
