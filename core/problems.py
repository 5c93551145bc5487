"""The kinds of problem the partner API answers with (RFC 9457 problem details: core/api.py
gives them their shape), and REST framework's nested field errors as a flat list."""

from dataclasses import dataclass

from rest_framework import status
from rest_framework.exceptions import APIException, ErrorDetail

PROBLEM_CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    title: str
    description: str


PROBLEM_TYPES = {
    problem.slug: problem
    for problem in (
        ProblemType("invalid-input", "The request has invalid fields.",
                    "A field is missing, of the wrong type or out of range: `errors` names each "
                    "one. Nothing was written."),
        ProblemType("invalid-json", "The body is not valid JSON.",
                    "Send a JSON object with `Content-Type: application/json`."),
        ProblemType("prescription-not-accepted", "The dose rules did not accept the prescription.",
                    "`findings` lists what the rules found: an error refuses the order; a "
                    "warning must be acknowledged (its `key` in `acknowledged`, with a `reason` "
                    "where `reason_required`). Nothing was written."),
        ProblemType("idempotency-key-missing", "This request needs an Idempotency-Key header.",
                    "Creating an order needs a key of your choosing (a UUID is best), the same "
                    "for every retry of the same request."),
        ProblemType("idempotency-key-reused", "The Idempotency-Key was used for another request.",
                    "A retry must send the same body to the same address; use a new key for a "
                    "new request."),
        ProblemType("conflict", "The record cannot do this in its current state.",
                    "For example an order that has shipped cannot be cancelled."),
        ProblemType("not-authenticated", "An API key is needed.",
                    "Send `Authorization: Api-Key <key>` with a key the clinic's prescriber "
                    "made in the portal (Clinic > API keys)."),
        ProblemType("invalid-key", "The API key is not valid.",
                    "It was revoked, mistyped, or its owner no longer prescribes for the clinic."),
        ProblemType("forbidden", "This key may not do this.", ""),
        ProblemType("not-found", "Not found.",
                    "There is no such record, or it belongs to another clinic."),
        ProblemType("method-not-allowed", "Method not allowed.", ""),
        ProblemType("not-acceptable", "Not acceptable.", "The API answers in JSON."),
        ProblemType("unsupported-media-type", "Unsupported media type.",
                    "Send the body as `application/json`."),
        ProblemType("too-many-requests", "Too many requests.",
                    "The key's rate limit is reached; `Retry-After` says after how many seconds "
                    "to try again."),
    )
}  # fmt: skip


class Problem(APIException):
    """An error of one of PROBLEM_TYPES, with members of its own (`findings`, ...)."""

    def __init__(self, slug: str, *, status_code: int, detail: str = "", **members):
        problem = PROBLEM_TYPES[slug]
        super().__init__(detail or problem.title)
        self.slug, self.status_code, self.members = slug, status_code, members


class Conflict(Problem):
    def __init__(self, detail: str):
        super().__init__("conflict", status_code=status.HTTP_409_CONFLICT, detail=detail)


def field_errors(detail, path: tuple = ()) -> list[dict[str, str]]:
    """REST framework's nested errors as a flat list: each with the dotted field name, its JSON
    Pointer, the message and its code."""
    if isinstance(detail, dict):
        return [
            error
            for name, inner in detail.items()
            for error in field_errors(inner, path if name == "non_field_errors" else (*path, name))
        ]
    if isinstance(detail, list):
        if all(isinstance(item, ErrorDetail | str) for item in detail):
            return [error for item in detail for error in field_errors(item, path)]
        return [error for i, item in enumerate(detail) for error in field_errors(item, (*path, i))]
    names = [str(part) for part in path]
    pointer = "".join(f"/{name.replace('~', '~0').replace('/', '~1')}" for name in names)
    return [
        {
            "field": ".".join(names),
            "pointer": f"#{pointer}",
            "detail": str(detail),
            "code": getattr(detail, "code", "invalid"),
        }
    ]
