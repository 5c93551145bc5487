"""How the FHIR endpoints speak HTTP: FHIR JSON in and out (`application/fhir+json`; a body
sent as `application/json` is read too), and every error as an R4B OperationOutcome.

REST framework still decides each error's status code and headers (WWW-Authenticate on a 401,
Retry-After on a 429) and rolls the transaction back; only the body changes, from the partner
API's problem details (core/api.py) to an OperationOutcome whose issue code says the kind of
error. The resources themselves are mapped in orders/fhir.py and pharmacy/fhir.py."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from drf_spectacular.utils import extend_schema
from fhir.resources.R4B.operationoutcome import OperationOutcome
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView, exception_handler

from .api_parsing import SafeJsonParser
from .problems import Problem, field_errors

FHIR_JSON = "application/fhir+json"
FHIR_PREFIX = "/fhir/"

# The OperationOutcome issue code of each status (FHIR R4 valueset issue-type).
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}


class FhirJsonRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "json"


class FhirJsonParser(SafeJsonParser):
    media_type = FHIR_JSON


class PlainJsonParser(SafeJsonParser):
    media_type = "application/json"


def outcome_issue(code: str, text: str, expression: str = "") -> dict:
    issue = {"severity": "error", "code": code, "details": {"text": text}}
    return {**issue, "expression": [expression]} if expression else issue


def outcome_of(issues: list[dict]) -> dict:
    """An R4B OperationOutcome (as JSON) of these issues, validated."""
    resource = {"resourceType": "OperationOutcome", "issue": issues}
    return OperationOutcome.model_validate(resource).model_dump(mode="json")


def outcome_response(*, status: int, code: str, text: str) -> JsonResponse:
    """An OperationOutcome answered outside REST framework's views (a refused address)."""
    body = outcome_of([outcome_issue(code, text)])
    return JsonResponse(body, status=status, content_type=FHIR_JSON)


def is_fhir(request) -> bool:
    return request.path.startswith(FHIR_PREFIX)


class FhirProblem(exceptions.APIException):
    """An error answered with an OperationOutcome the view made (the Bundle's issues, what the
    dose rules found)."""

    def __init__(self, outcome: dict, *, status_code: int):
        super().__init__("See the OperationOutcome.")
        self.outcome, self.status_code = outcome, status_code


def _issues(exc, status_code: int) -> list[dict]:
    code = ISSUE_CODES.get(status_code, "processing")
    if isinstance(exc, exceptions.ValidationError):
        return [
            outcome_issue(
                "required" if error["code"] == "required" else "invalid",
                f"{error['field']}: {error['detail']}" if error["field"] else error["detail"],
            )
            for error in field_errors(exc.detail)
        ]
    if isinstance(exc, exceptions.ParseError):
        code = "structure"
    elif isinstance(exc, Problem) and exc.slug == "idempotency-key-missing":
        code = "required"
    return [outcome_issue(code, str(exc.detail))]


def fhir_exception_handler(exc, context):
    """REST framework's handler (status, headers, the transaction rolled back), with the body
    as an OperationOutcome."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, DjangoValidationError):  # a service's refusal
        exc = exceptions.ValidationError(exc.messages)
    response = exception_handler(exc, context)
    if response is None:
        return None  # a server error: Django's handler, logged and reported
    if isinstance(exc, FhirProblem):
        response.data = exc.outcome
    else:
        response.data = outcome_of(_issues(exc, response.status_code))
    response.content_type = FHIR_JSON
    return response


class FhirView(APIView):
    """A FHIR endpoint: the partner API's keys and rate limit (REST framework's defaults), FHIR
    JSON in and out, errors as OperationOutcomes. OPTIONS is not a FHIR interaction (405)."""

    renderer_classes = [FhirJsonRenderer]
    parser_classes = [FhirJsonParser, PlainJsonParser]
    metadata_class = None

    def perform_content_negotiation(self, request, force=False):
        # FHIR JSON is the only format: whatever Accept says, errors included.
        return super().perform_content_negotiation(request, force=True)

    def get_exception_handler(self):
        return fhir_exception_handler


@extend_schema(exclude=True)
class NoSuchRouteView(FhirView):
    """Any other address under the FHIR base, with a key: a 404 OperationOutcome, as FHIR
    clients expect for a resource type or an interaction the server does not have."""

    http_method_names = ["get", "post", "put", "patch", "delete", "head"]

    def get(self, request, route):
        raise exceptions.NotFound("No FHIR interaction has this address: see metadata.")

    post = put = patch = delete = get
