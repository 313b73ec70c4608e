"""Finding the application a command names (``MODULE[:APP]``), compiling it, and building
an orchestration from a JSON option."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from hosts.cli.errors import CliError
from hosts.cli.wording import describe
from hosts.text import article, name_hint
from reactive import App, DefinitionError, Orchestration
from reactive.hosting import BUILTINS, Kind, OperationInfo, Schema


def _import_module(name: str) -> ModuleType:
    """Import ``name``, a dotted module name or a path to a ``.py`` file."""
    # like `python -m`, find modules in the working directory even when run as a script
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if name.endswith(".py") or os.sep in name or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise CliError(f"cannot import {name}: no such file")
        directory = str(path.resolve().parent)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise CliError(f"cannot import {name}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise CliError(f"importing {name} failed: {describe(exc)}") from None
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise CliError(f"cannot import module {name!r}: no module named {missing!r}") from None
        raise CliError(f"importing {name!r} failed: {describe(exc)}") from None
    except Exception as exc:
        raise CliError(f"importing {name!r} failed: {describe(exc)}") from None


def load_app(target: str) -> App:
    """The :class:`App` that ``MODULE:ATTRIBUTE`` names; with no attribute, the only App
    the module defines."""
    module_name, _, attribute = target.partition(":")
    if not module_name:
        raise CliError(f"expected MODULE:APP, got {target!r}")
    module = _import_module(module_name)
    if attribute:
        obj: Any = module
        for part in attribute.split("."):
            if not hasattr(obj, part):
                apps = _apps_in(module)
                hint = f"; it defines {', '.join(apps)}" if apps else ""
                raise CliError(f"module {module_name!r} has no attribute {attribute!r}{hint}")
            obj = getattr(obj, part)
        if not isinstance(obj, App):
            what = "a class" if isinstance(obj, type) else article(type(obj).__name__)
            raise CliError(f"{target} is {what}, not a reactive App")
        return obj
    apps = _apps_in(module)
    if not apps:
        raise CliError(f"no App found in module {module_name!r} (define e.g. app = App('name'))")
    if len(set(map(id, apps.values()))) > 1:
        names = ", ".join(apps)
        raise CliError(
            f"module {module_name!r} defines several Apps ({names}); "
            f"name one, e.g. {module_name}:{next(iter(apps))}"
        )
    return next(iter(apps.values()))


def _apps_in(module: ModuleType) -> dict[str, App]:
    return {name: obj for name, obj in vars(module).items() if isinstance(obj, App)}


def compile_app(app: App) -> Schema:
    try:
        return app.compile()
    except DefinitionError as exc:
        raise CliError(f"invalid application {app.name!r}: {exc}") from None


def user_operations(schema: Schema) -> list[OperationInfo]:
    """The application's own operations (not the runtime's built-in ones), by name."""
    return sorted(
        (info for info in schema.operations.values() if info.cls not in BUILTINS),
        key=lambda info: info.name,
    )


def find_orchestration(schema: Schema, name: str) -> OperationInfo:
    names = [i.name for i in user_operations(schema) if i.kind is Kind.ORCHESTRATION]
    if name in names:
        return schema.by_name[name]
    app = schema.app_name
    other = schema.by_name.get(name)
    if other is not None and other.cls not in BUILTINS:
        raise CliError(f"{name} is {article(other.kind.value)}, not an orchestration")
    hint = name_hint(name, names)
    raise CliError(f"application {app!r} has no orchestration named {name!r}{hint}")


def read_json_option(option: str, text: str) -> Any:
    """The JSON value of a command-line option: inline, ``@FILE``, or ``-`` (stdin)."""
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{option} {text}: cannot read the file ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{option} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None


def build_orchestration(info: OperationInfo, text: str) -> Orchestration[Any]:
    """The orchestration object that the JSON object ``text`` describes (``@FILE``: the
    file's contents; ``-``: standard input)."""
    data = read_json_option("--input", text)
    if not isinstance(data, dict):
        raise CliError(
            f"--input must be a JSON object of {info.name}'s fields, "
            f"got {type(data).__name__ if data is not None else 'null'}"
        )
    try:
        op = info.cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        more = exc.error_count() - 1
        tail = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        field = f"{where}: " if where else ""
        raise CliError(f"invalid input for {info.name}: {field}{first['msg']}{tail}") from None
    assert isinstance(op, Orchestration)
    return op
