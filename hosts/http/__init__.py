"""The HTTP API and web dashboard: one ASGI application (FastAPI) over a client and a
status store, served locally by ``reactive serve`` and by the cloud hosts' HTTP triggers."""

from hosts.http.app import (
    API_KEY_HEADER,
    INSTANCE_ID_HEADER,
    REQUEST_ID_HEADER,
    create_app,
    follow_commits,
)

__all__ = [
    "API_KEY_HEADER",
    "INSTANCE_ID_HEADER",
    "REQUEST_ID_HEADER",
    "create_app",
    "follow_commits",
]
