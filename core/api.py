"""The partner API's errors as RFC 9457 problem details (`application/problem+json`).

Every error answer is one object: `type` (a URI naming the kind of problem; it opens a page that
explains it), `title`, `status`, `detail` and `instance` (the path asked), plus, for invalid
input, `errors`: each problem with the field it is about, as a dotted name ("steps.0.dose_mg")
and as a JSON Pointer into the request body ("#/steps/0/dose_mg"). Django REST framework raises
the errors; this module only gives them their shape."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.urls import reverse
from django.views.defaults import page_not_found
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from .problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES, Problem, field_errors

API_PREFIX = "/api/"
_BY_EXCEPTION = [
    (exceptions.ParseError, "invalid-json"),
    (exceptions.ValidationError, "invalid-input"),
    (exceptions.NotAuthenticated, "not-authenticated"),
    (exceptions.AuthenticationFailed, "invalid-key"),
    (exceptions.PermissionDenied, "forbidden"),
    (exceptions.NotFound, "not-found"),
    (exceptions.MethodNotAllowed, "method-not-allowed"),
    (exceptions.NotAcceptable, "not-acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported-media-type"),
    (exceptions.Throttled, "too-many-requests"),
]


def problem_type_uri(request, slug: str) -> str:
    return request.build_absolute_uri(reverse("api_problem", args=[slug]))


def _as_rest_framework(exc):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return exceptions.ValidationError(detail)
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    return exc


def problem_exception_handler(exc, context):
    """REST framework's handler (status, WWW-Authenticate, Retry-After, the transaction rolled
    back), with the body as a problem."""
    exc = _as_rest_framework(exc)
    response = exception_handler(exc, context)
    if response is None:
        return None  # a server error: Django's handler, logged and reported
    request = context["request"]
    if isinstance(exc, Problem):
        slug, members = exc.slug, exc.members
    else:
        slug = next((s for kind, s in _BY_EXCEPTION if isinstance(exc, kind)), "invalid-input")
        members = {}
    problem = PROBLEM_TYPES[slug]
    body = {
        "type": problem_type_uri(request, slug),
        "title": problem.title,
        "status": response.status_code,
        "instance": request.path,
    }
    if isinstance(exc, exceptions.ValidationError):
        body["errors"] = field_errors(exc.detail)
        body["detail"] = "; ".join(f"{e['field'] or 'body'}: {e['detail']}" for e in body["errors"])
    else:
        body["detail"] = str(exc.detail)
    response.data = {**body, **members}
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


class ProblemTypeView(APIView):
    """What a problem type means: the page its `type` URI opens (no key needed)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request, slug):
        problem = PROBLEM_TYPES.get(slug)
        if problem is None:
            raise exceptions.NotFound()
        return Response(
            {
                "type": problem_type_uri(request, slug),
                "title": problem.title,
                "description": problem.description,
            }
        )


def problem_response(request, slug: str, *, status: int, detail: str) -> JsonResponse:
    """A problem answered outside REST framework's views (no route, a refused address)."""
    body = {
        "type": problem_type_uri(request, slug),
        "title": PROBLEM_TYPES[slug].title,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def not_found(request, exception):
    """Django's 404 for an address no route takes: a problem under the partner API's prefix,
    the portal's page elsewhere (the root URLconf's handler404)."""
    if not is_api(request):
        return page_not_found(request, exception)
    return problem_response(
        request, "not-found", status=404, detail="No route of the API has this address."
    )


class KnownQueryParameters:
    """For API views: a query parameter the operation does not take is refused (400, naming
    it), not ignored, so that a misspelt filter never lists every record. `query_parameters`
    names those it takes; an empty value of one is refused too."""

    def query_parameters(self) -> set[str]:
        return set()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if getattr(self, request.method.lower(), None) is None:
            return  # a method the route does not take: 405, whatever the query
        taken = self.query_parameters()
        errors = {}
        for name in request.query_params:
            if name not in taken:
                errors[name] = "This operation takes no such parameter."
            elif "" in request.query_params.getlist(name):
                errors[name] = "Send a value, or leave the parameter out."
        if errors:
            raise exceptions.ValidationError(errors)
