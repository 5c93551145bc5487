"""The partner API's OpenAPI schema (drf-spectacular), with the problem answers (RFC 9457,
core/api.py) each operation may give documented, so that clients and schema-driven tests know
every status code and body."""

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from .problems import PROBLEM_CONTENT_TYPE


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(
        help_text='Dotted name, e.g. "steps.0.dose_mg" ("" for the body).'
    )
    pointer = serializers.CharField(
        help_text='JSON Pointer into the body, e.g. "#/steps/0/dose_mg".'
    )
    detail = serializers.CharField()
    code = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details; `errors`, `findings` and `unacknowledged` where they apply."""

    type = serializers.URLField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    errors = FieldErrorSerializer(many=True, required=False)
    findings = serializers.ListField(child=serializers.DictField(), required=False)
    unacknowledged = serializers.ListField(child=serializers.CharField(), required=False)


# The errors every operation may answer with, and those of the ones that take a body.
EVERY_OPERATION_ERRORS = {
    "400": "Invalid input or filters",
    "401": "No API key, or not a valid one",
    "404": "No such record in the key's clinic",
    "406": "Not acceptable",
    "429": "Rate limit reached (see Retry-After)",
}
WRITING_ERRORS = {
    "409": "The record's state refuses it, or the Idempotency-Key is in use",
    "415": "Not JSON",
    "422": "The dose rules refused it, or the Idempotency-Key was used for another request",
}


class PortalAutoSchema(AutoSchema):
    """drf-spectacular's schema, with the problem answers of each operation documented."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        problem = self.resolve_serializer(ProblemSerializer, "response").ref
        errors = dict(EVERY_OPERATION_ERRORS)
        if self.method in ("POST", "PATCH", "PUT"):
            errors |= WRITING_ERRORS
        for code, description in errors.items():
            responses.setdefault(
                code,
                {
                    "description": description,
                    "content": {PROBLEM_CONTENT_TYPE: {"schema": problem}},
                },
            )
        return responses
