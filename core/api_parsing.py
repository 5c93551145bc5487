"""The partner API's JSON parser (REST framework's settings import it before REST framework's
views exist, so it lives apart from core/api.py)."""

from rest_framework import exceptions
from rest_framework.parsers import JSONParser


class SafeJsonParser(JSONParser):
    """REST framework's JSON parser, with a body nested deeper than the parser goes and a
    charset Python does not know refused as unreadable (400), not a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except (RecursionError, LookupError) as error:
            raise exceptions.ParseError(f"The body cannot be read as JSON: {error}") from error
