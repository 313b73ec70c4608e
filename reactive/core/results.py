"""Results and errors in wire form: JSON data, rebuilt with their types on the other side.

An error raised by application code also carries where it was raised: ``where`` (the file,
line and function of the innermost application frame) and ``traceback`` (the application
frames only, most recent call last). Both survive the trip to the caller, and on to its
caller when it re-raises the error, so that a failed instance points at the code that
failed first.
"""

from __future__ import annotations

import json
import os
import sysconfig
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from reactive import errors

if TYPE_CHECKING:
    from reactive.schema import OperationInfo, Schema

_ORIGIN = "__reactive_origin__"  # set on decoded exceptions: where they were first raised
_TRACEBACK_LIMIT = 4000  # characters of traceback kept in an encoded error
_LIBRARY_DIRS = tuple(
    str(Path(p).resolve()) + os.sep
    for p in {
        str(Path(__file__).resolve().parents[1]),  # the reactive package
        *(sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib",
                                                     "platlib")),
    }
    if p
)


def _user_frames(tb: TracebackType | None) -> traceback.StackSummary:
    """The frames of ``tb`` that belong to application code (not the runtime, the
    standard library or installed packages)."""
    frames = traceback.extract_tb(tb)
    return traceback.StackSummary.from_list(
        [f for f in frames if not os.path.abspath(f.filename).startswith(_LIBRARY_DIRS)]
    )


def _shown(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive
        return filename
    return filename if relative.startswith("..") else relative


def encode_error(exc: BaseException) -> dict[str, Any]:
    args: list[Any] | None = list(exc.args)
    try:
        json.dumps(args)
    except (TypeError, ValueError):
        args = None
    data: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc), "args": args}
    frames = _user_frames(exc.__traceback__)
    text = "".join(traceback.format_list(frames)).replace(os.getcwd() + os.sep, "")
    origin: dict[str, Any] = getattr(exc, _ORIGIN, None) or {}
    if origin.get("attempts"):
        data["attempts"] = origin["attempts"]
    if origin.get("where"):  # first raised elsewhere: keep that place, add where it went on
        data["where"] = origin["where"]
        text = origin["traceback"] + (f"re-raised:\n{text}" if text else "")
    elif frames:
        last = frames[-1]
        data["where"] = f"{_shown(last.filename)}:{last.lineno} in {last.name}"
    if text:
        data["traceback"] = text[-_TRACEBACK_LIMIT:]
    return data


def decode_error(schema: Schema, data: Any) -> BaseException:
    """The exception as the caller sees it: its own type if the application knows the
    type (never imported by name from the wire), else an ApplicationError. Where it was
    raised, and after how many attempts, come as notes (shown with its traceback)."""
    try:
        name, message, args = data["type"], data["message"], data.get("args")
    except (TypeError, KeyError):
        return errors.ApplicationError("unknown", str(data))
    exc: BaseException | None = None
    cls = schema.exceptions.get(name)
    if cls is not None:
        try:
            exc = cls(*args) if args is not None else cls(message)
        except Exception:
            exc = None
    if exc is None:
        exc = errors.ApplicationError(name, message)
    if data.get("where") or data.get("attempts"):
        setattr(exc, _ORIGIN, {
            "where": data.get("where"), "traceback": data.get("traceback", ""),
            "attempts": data.get("attempts"),
        })
    if data.get("where"):
        exc.add_note(f"raised at {data['where']}")
        if data.get("traceback"):
            exc.add_note(f"application traceback (most recent call last):\n{data['traceback']}")
    if data.get("attempts"):
        exc.add_note(f"failed after {data['attempts']} attempts")
    return exc


def after_attempts(error: Any, attempts: int) -> Any:
    """An activity's last error once its retries are exhausted: it says how many."""
    if not isinstance(error, dict) or attempts < 2:
        return error
    message = f"{error.get('message', '')} (after {attempts} attempts)"
    return {**error, "message": message, "attempts": attempts}


def _plain_type(adapter: TypeAdapter[Any]) -> type | None:
    """The declared result type if it is int, str or bool: a value of exactly that type
    is its own JSON form and validates as itself, so it needs no trip through pydantic
    (a result is encoded on every answer and decoded on every response)."""
    shown = getattr(adapter, "_type", None)  # what the TypeAdapter was built for
    # compared by identity: a type built with Annotated may not be hashable
    return shown if shown is int or shown is str or shown is bool else None


def result_decoder(info: OperationInfo) -> Callable[[Any], Any]:
    """What turns the wire form of ``info``'s result back into the value its caller gets:
    the result type's validation, skipped for a value of exactly a plain declared type."""
    validate = info.result.validate_python
    plain = _plain_type(info.result)
    if plain is None:
        return validate

    def decode(value: Any) -> Any:
        return value if type(value) is plain else validate(value)

    return decode


def encode_result(info: OperationInfo, value: Any) -> tuple[bool, Any]:
    if type(value) is _plain_type(info.result):  # (never NoneType)
        return True, value
    try:
        return True, info.result.dump_python(value, mode="json", warnings="error")
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].endswith(":"):  # "Pydantic serializer warnings:"
            lines = lines[1:]
        detail = "; ".join(lines)
        return False, encode_error(
            errors.ReactiveError(
                f"{info.name} returned {type(value).__name__} {value!r:.80}, which does not "
                f"serialize as its declared result type {_type_name(info)}: {detail}"
            )
        )


def _type_name(info: OperationInfo) -> str:
    shown = getattr(info.result, "_type", None)  # what the TypeAdapter was built for
    return shown.__name__ if isinstance(shown, type) else repr(shown)
