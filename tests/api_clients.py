"""A client of the partner API, as a clinic's system is: with a key in the Authorization header
(or none)."""

from rest_framework.test import APIClient


def api_client(raw_key: str | None) -> APIClient:
    client = APIClient()
    if raw_key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client
