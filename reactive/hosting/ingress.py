"""The ingress queue: start requests that anyone may post as JSON.

    {"orchestration": "Replenish", "input": {"item": "tea"},
     "instance_id": "optional", "request_id": "optional"}

A request is validated with the application's pydantic models and becomes a start
message for the instance's partition; anything invalid raises :class:`IngressError`
with a one-line reason, for the host to dead-letter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError

from reactive import errors
from reactive.hosting import requests
from reactive.hosting.seams import Outgoing
from reactive.schema import Kind, Schema

_FIELDS = {"orchestration", "input", "instance_id", "request_id"}


class IngressError(errors.ReactiveError):
    """An ingress request that cannot be accepted; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class IngressRequest:
    instance_id: str
    name: str
    outgoing: Outgoing


def parse_request(
    schema: Schema, partitions: int, data: bytes | str, epoch: str = "1"
) -> IngressRequest:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngressError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise IngressError(f"a request must be a JSON object, not {type(body).__name__}")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise IngressError(f"unknown request fields {unknown}; allowed: {sorted(_FIELDS)}")
    name = body.get("orchestration")
    if not isinstance(name, str):
        raise IngressError("'orchestration' must name an orchestration (a string)")
    info = schema.by_name.get(name)
    if info is None or info.kind is not Kind.ORCHESTRATION or name.startswith("Client"):
        known = sorted(i.name for i in schema.by_name.values()
                       if i.kind is Kind.ORCHESTRATION and not i.name.startswith("Client"))
        raise IngressError(f"unknown orchestration {name!r}; known: {', '.join(known)}")
    given = body.get("input", {})
    if not isinstance(given, dict):
        raise IngressError("'input' must be a JSON object of the orchestration's fields")
    try:
        op = info.cls.model_validate(given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        raise IngressError(f"invalid input for {name}: {where}: {first['msg']}") from None
    for field in ("instance_id", "request_id"):
        value = body.get(field)
        if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
            raise IngressError(f"'{field}' must be a non-empty string of at most 200 characters")
    instance_id = body.get("instance_id") or body.get("request_id") or requests.new_id()
    outgoing = requests.start(schema, partitions, epoch, instance_id, op)  # type: ignore[arg-type]
    return IngressRequest(instance_id, name, outgoing)
