"""Results and errors in wire form: JSON data, rebuilt with their types on the other side."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from reactive import errors

if TYPE_CHECKING:
    from reactive.app import OperationInfo, Schema


def encode_error(exc: BaseException) -> dict[str, Any]:
    args: list[Any] | None = list(exc.args)
    try:
        json.dumps(args)
    except (TypeError, ValueError):
        args = None
    return {"type": type(exc).__name__, "message": str(exc), "args": args}


def decode_error(schema: Schema, data: Any) -> BaseException:
    """The exception as the caller sees it: its own type if the application knows the
    type (never imported by name from the wire), else an ApplicationError."""
    try:
        name, message, args = data["type"], data["message"], data.get("args")
    except (TypeError, KeyError):
        return errors.ApplicationError("unknown", str(data))
    cls = schema.exceptions.get(name)
    if cls is not None:
        try:
            return cls(*args) if args is not None else cls(message)
        except Exception:
            pass
    return errors.ApplicationError(name, message)


def encode_result(info: OperationInfo, value: Any) -> tuple[bool, Any]:
    try:
        return True, info.result.dump_python(value, mode="json", warnings="error")
    except Exception as exc:
        detail = str(exc).splitlines()[0]
        return False, encode_error(
            errors.ReactiveError(
                f"{info.name} returned {type(value).__name__} {value!r:.80}, which does not "
                f"serialize as its declared result type: {detail}"
            )
        )
