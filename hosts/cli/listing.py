"""``reactive list MODULE:APP``: an application's operations and states, by kind (with
``--url`` or ``--state``: its instances, see :mod:`hosts.cli.instances`)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from hosts.cli.apps import compile_app, load_app, user_operations
from hosts.cli.errors import CliError
from reactive import Activity, Operation, Orchestration, Read, State, Update
from reactive.hosting import Kind, OperationInfo

_SECTIONS = {
    Kind.ORCHESTRATION: "orchestrations",
    Kind.ACTIVITY: "activities",
    Kind.UPDATE: "updates",
    Kind.READ: "reads",
    Kind.EVENT: "events",
}
_RESULT_ORIGINS: dict[Kind, tuple[type, int]] = {
    Kind.ORCHESTRATION: (Orchestration, 0),
    Kind.ACTIVITY: (Activity, 0),
    Kind.UPDATE: (Update, 1),
    Kind.READ: (Read, 1),
}


def _type_text(annotation: Any) -> str:
    if annotation is None or annotation is type(None):
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    # drop module paths: typing.Optional[pkg.mod.Cls] -> Optional[Cls]
    return re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", repr(annotation))


_MISSING = object()


def _generic_arg(cls: type, origin: type, index: int) -> Any:
    """The type argument ``index`` that ``cls`` gives its generic base ``origin``."""
    for base in cls.__mro__:
        meta = getattr(base, "__pydantic_generic_metadata__", None)
        if meta and meta.get("origin") is origin and len(meta["args"]) > index:
            return meta["args"][index]
    return _MISSING


def _fields_text(cls: type[Operation] | type[State[Any]]) -> str:
    parts = []
    for name, field in cls.model_fields.items():
        text = f"{name}: {_type_text(field.annotation)}"
        if not field.is_required():
            default = "..." if field.default_factory is not None else repr(field.default)
            text += f" = {default}"
        parts.append(text)
    return ", ".join(parts)


def describe_operation(info: OperationInfo, startup: set[type]) -> str:
    text = f"{info.name}({_fields_text(info.cls)})"
    origin = _RESULT_ORIGINS.get(info.kind)
    if origin is not None:
        result = _generic_arg(info.cls, *origin)
        if result is not _MISSING:
            text += f" -> {_type_text(result)}"
    notes = []
    if info.state is not None:
        notes.append(f"state {info.state.name}")
    if info.lock:
        notes.append("lock")
    if info.create:
        notes.append("create")
    if info.read_only:
        notes.append("read-only")
    if info.cls in startup:
        notes.append("startup")
    return text + (f"  [{', '.join(notes)}]" if notes else "")


def cmd_list(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    schema = compile_app(app)
    startup = {type(op) for op in schema.startup}
    lines = [f"application {schema.app_name!r}"]
    operations = user_operations(schema)
    for kind, title in _SECTIONS.items():
        found = [describe_operation(i, startup) for i in operations if i.kind is kind]
        if found:
            lines.append(f"{title}:")
            lines.extend(f"  {text}" for text in found)
    states = sorted(schema.states.values(), key=lambda s: s.name)
    if states:
        lines.append("states:")
        for state in states:
            events = ", ".join(sorted(event.__name__ for event in state.handlers))
            text = f"  {state.name}[{state.affinity.name}]({_fields_text(state.cls)})"
            lines.append(text + (f"  [subscribes to {events}]" if events else ""))
    if len(lines) == 1:
        lines.append("no operations registered")
    print("\n".join(lines))
    return 0



def cmd_list_any(args: argparse.Namespace) -> int:
    """``list``: instances with ``--url`` or ``--state``, else the operations of MODULE:APP."""
    if args.url or args.state:
        from hosts.cli.instances import cmd_list_instances  # the HTTP client, the folder

        return cmd_list_instances(args)
    if args.app is None:
        raise CliError("list: give MODULE:APP (its operations) or --url / --state (its instances)")
    return cmd_list(args)
