"""Refusing at the edge what no page can take: a control character (NUL and the other C0
characters, DEL) in the address's parameters. No one types them into a search box or picks
them from a filter; PostgreSQL refuses NUL in any text, so without this a search or an admin
filter with one would be a server error. The answer is a 400 page that says why (a problem,
in JSON, under the partner API's prefix; an OperationOutcome under the FHIR endpoints')."""

import re

from django.http import HttpResponseBadRequest
from django.template.loader import render_to_string

from .api import is_api, problem_response
from .fhir_api import is_fhir, outcome_response

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MESSAGE = (
    "The address has a control character in it (such as NUL), which no search or filter can "
    "take. Remove it and try again."
)


def has_control_characters(query) -> bool:
    return any(
        CONTROL_CHARACTERS.search(key) or any(CONTROL_CHARACTERS.search(v) for v in values)
        for key, values in query.lists()
    )


class ControlCharactersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if has_control_characters(request.GET):
            if is_api(request):
                return problem_response(request, "invalid-input", status=400, detail=MESSAGE)
            if is_fhir(request):
                return outcome_response(status=400, code="invalid", text=MESSAGE)
            page = render_to_string("400.html", {"message": MESSAGE}, request=request)
            return HttpResponseBadRequest(page)
        return self.get_response(request)
