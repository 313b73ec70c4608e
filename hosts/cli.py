"""The ``reactive`` command line: run an application on the emulator, start one of its
orchestrations, or list what it defines.

    reactive run MODULE[:APP] [--partitions N] [--seed S] [--faults] [--clock virtual|real]
    reactive start MODULE[:APP] NAME [--input JSON] [--id ID] [--wait]
    reactive list MODULE[:APP]

Usage errors (a module that does not import, no application, an unknown orchestration, bad
input) print one line to stderr and exit with status 2; a failed orchestration exits with
status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from pydantic import ValidationError

from hosts.bench.plot import throughput_svg
from hosts.bench.runner import HOSTS, WORKLOADS, format_table, run_all, to_json
from hosts.emulator import ALL_FAULTS, Emulator
from hosts.local import LocalHost
from hosts.text import article, name_hint
from reactive import (
    Activity,
    App,
    ApplicationError,
    DefinitionError,
    InstanceStatus,
    Operation,
    Orchestration,
    ReactiveError,
    Read,
    State,
    Update,
)
from reactive.hosting import BUILTINS, Host, Kind, OperationInfo, Schema, statistics
from reactive.hosting.seams import StatusQuery

PROG = "reactive"
USAGE_ERROR = 2
FAILED = 1
INTERRUPTED = 130
PROGRESS_LINE_INTERVAL = 2.0  # seconds between progress lines when stderr is not a TTY
PROGRESS_TTY_INTERVAL = 0.1  # seconds between redraws of the TTY progress line
RESULT_WIDTH = 200  # characters of a result shown in the run summary
UNHANDLED_SHOWN = 10  # unhandled errors listed in a quiet run's summary


class CliError(Exception):
    """A problem to report as one line on stderr, with an exit status."""

    def __init__(self, message: str, status: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.status = status


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- finding the application ---------------------------------------------------------------


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
            raise CliError(f"importing {name} failed: {_describe(exc)}") from None
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise CliError(f"cannot import module {name!r}: no module named {missing!r}") from None
        raise CliError(f"importing {name!r} failed: {_describe(exc)}") from None
    except Exception as exc:
        raise CliError(f"importing {name!r} failed: {_describe(exc)}") from None


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


def _compile(app: App) -> Schema:
    try:
        return app.compile()
    except DefinitionError as exc:
        raise CliError(f"invalid application {app.name!r}: {exc}") from None


def _user_operations(schema: Schema) -> list[OperationInfo]:
    """The application's own operations (not the runtime's built-in ones), by name."""
    return sorted(
        (info for info in schema.operations.values() if info.cls not in BUILTINS),
        key=lambda info: info.name,
    )


def find_orchestration(schema: Schema, name: str) -> OperationInfo:
    names = [i.name for i in _user_operations(schema) if i.kind is Kind.ORCHESTRATION]
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


# -- running -------------------------------------------------------------------------------


def _make_emulator(
    app: App, args: argparse.Namespace, unhandled: TextIO | None, progress: Progress
) -> Host:
    """An emulator set up from the command line; unhandled errors are printed to
    ``unhandled`` as they happen (None: not printed)."""
    faults = dataclasses.replace(ALL_FAULTS, seed=args.seed) if args.faults else None

    def report(error: str) -> None:
        if unhandled is not None:
            progress.clear()
            unhandled.write(f"unhandled error: {_one_line(error)}\n")
            unhandled.flush()

    if getattr(args, "state", None) is not None:
        if args.faults:
            raise CliError("--faults and --state do not combine: faults are injected in memory")
        try:
            return LocalHost(
                app,
                partitions=args.partitions,  # None: the folder's own count
                state_dir=Path(args.state),
                seed=args.seed,
                on_unhandled=report,
            )
        except ReactiveError as exc:
            raise CliError(str(exc)) from None
    return Emulator(
        app,
        partitions=args.partitions or 4,
        seed=args.seed,
        faults=faults,
        clock=args.clock,
        on_unhandled=report,
    )


def live_orchestrations(emulator: Host) -> int:
    return sum(1 for part in emulator.parts for run in part.runs.values() if run.init is None)


def finished_orchestrations(emulator: Host) -> int:
    """Finished instances the partitions still hold (``App.keep_completed`` bounds them)."""
    return sum(len(part.completed) for part in emulator.parts)


class Progress:
    """Reports progress on long runs: one updating line on a TTY, otherwise a line every
    couple of seconds at most: instances finished out of those known, deliveries and
    their rate. The emulator calls it every 1000 deliveries, a state folder's host
    (``--state``) after every round of invocations."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = False
        self._last_time = time.monotonic()
        self._last_count = 0
        self._last_drawn = 0.0 if self.tty else self._last_time

    def __call__(self, emulator: Host) -> None:
        now = time.monotonic()
        interval = PROGRESS_TTY_INTERVAL if self.tty else PROGRESS_LINE_INTERVAL
        if now - self._last_drawn < interval:
            return
        rate = (emulator.deliveries - self._last_count) / max(now - self._last_time, 1e-6)
        self._last_time, self._last_count, self._last_drawn = now, emulator.deliveries, now
        live = live_orchestrations(emulator)
        finished = finished_orchestrations(emulator)
        text = (
            f"{finished:,}/{finished + live:,} instances finished, "
            f"{emulator.deliveries:,} deliveries, {rate:,.0f} messages/s, "
            f"{live:,} live orchestrations"
        )
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
            self.shown = True
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class _LineHandler(logging.Handler):
    """Prints application log lines as they are emitted."""

    def __init__(self, stream: TextIO, progress: Progress) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.clear()
        level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        self.stream.write(f"{level}{record.getMessage()}\n")
        self.stream.flush()


@contextmanager
def _app_logging(emulator: Host, stream: TextIO | None, progress: Progress) -> Iterator[None]:
    """Route the application's log lines to ``stream`` (None: drop them), and keep the
    emulator's own report of unhandled errors out of the way (the CLI prints those)."""
    handler: logging.Handler = (
        logging.NullHandler() if stream is None else _LineHandler(stream, progress)
    )
    # a logger without handlers would fall back to logging.lastResort: give each one
    quiet = logging.NullHandler()
    routes = [(emulator.app_log, handler), (logging.getLogger("reactive.emulator"), quiet)]
    saved = [(lg.level, lg.propagate) for lg, _ in routes]
    emulator.app_log.setLevel(logging.INFO)
    for lg, route in routes:
        lg.propagate = False
        lg.addHandler(route)
    try:
        yield
    finally:
        for (lg, route), (level, propagate) in zip(routes, saved, strict=True):
            lg.removeHandler(route)
            lg.setLevel(level)
            lg.propagate = propagate


@dataclasses.dataclass
class InstanceRow:
    """A top-level orchestration instance (started by the application or a client)."""

    instance_id: str
    name: str
    status: str
    result: Any = None
    error: dict[str, Any] | None = None
    waits: list[str] | None = None


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def top_level_instances(emulator: Host) -> list[InstanceRow]:
    """Every instance nobody awaits: finished ones from each partition's records, plus the
    ones still running (in durable mode: from the status store)."""
    rows: list[InstanceRow] = []
    if isinstance(emulator, LocalHost):
        records = emulator.status.query(StatusQuery(limit=1_000_000))
        rows = [InstanceRow(r.instance_id, r.name, r.status, r.result, r.error) for r in records]
        return sorted(rows, key=lambda row: _natural(row.instance_id))
    for part in emulator.parts:
        for iid, record in part.completed.items():
            rows.append(
                InstanceRow(
                    iid, record["name"], record["status"], record.get("result"), record.get("error")
                )
            )
        for iid, run in part.runs.items():
            if run.init is None and run.reply is None:
                rows.append(InstanceRow(iid, type(run.op).__name__, "running"))
    return sorted(rows, key=lambda row: _natural(row.instance_id))


def _wire_error_text(error: dict[str, Any] | None) -> str:
    if not isinstance(error, dict):
        return "unknown error"
    kind, message = error.get("type", "Error"), error.get("message", "")
    if kind == "ApplicationError":  # its message already reads "OriginalType: message"
        return _one_line(str(message))
    return _one_line(f"{kind}: {message}")


def _error_text(error: BaseException) -> str:
    if isinstance(error, ApplicationError):
        if error.remote_type == "ApplicationError":  # wrapped twice: the message names the type
            return _one_line(error.remote_message)
        return _one_line(f"{error.remote_type}: {error.remote_message}")
    return _one_line(f"{type(error).__name__}: {error}")


def _describe(exc: BaseException) -> str:
    return _one_line(f"{type(exc).__name__}: {exc}")


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n:,} {singular if n == 1 else plural or singular + 's'}"


def _shorten(text: str, width: int = RESULT_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def summary_rows(emulator: Host) -> list[InstanceRow]:
    """The top-level instances, live ones with what they wait for."""
    rows = top_level_instances(emulator)
    for row in rows:
        if row.status == "running":
            row.waits = emulator.describe(row.instance_id)
    return rows


def print_summary(
    emulator: Host, out: TextIO, list_unhandled: bool, interrupted: bool = False,
    stopped: bool = False,
) -> list[InstanceRow]:
    rows = summary_rows(emulator)
    note = " (interrupted)" if interrupted else " (stopped at --max-time)" if stopped else ""
    out.write(f"\n== summary{note} ==\n")
    if rows:
        id_width = max(len(row.instance_id) for row in rows)
        name_width = max(len(row.name) for row in rows)
        for row in rows:
            if row.status == "completed":
                detail = _shorten(json.dumps(row.result, ensure_ascii=False))
            elif row.error is not None:
                detail = _wire_error_text(row.error)
            elif row.waits:
                detail = "waits for " + "; ".join(row.waits)
            else:
                detail = ""
            line = f"{row.instance_id:<{id_width}}  {row.name:<{name_width}}  {row.status:<10}"
            out.write(f"{line} {detail}".rstrip() + "\n")
    else:
        out.write("no orchestration instances\n")
    counts = statistics(emulator)
    stats = [
        _count(counts["deliveries"], "delivery", "deliveries"),
        _count(counts["activity_runs"], "activity run"),
        _count(counts["unhandled"], "unhandled error"),
    ]
    faults = getattr(emulator, "faults", None)  # the durable host injects none
    if faults is not None and (faults.restore_probability or faults.duplicate_probability):
        stats += [
            _count(counts["restores"], "restore"),
            _count(counts["duplicates_dropped"], "duplicate dropped", "duplicates dropped"),
        ]
    out.write(", ".join(stats) + "\n")
    if list_unhandled:
        for error in emulator.unhandled[:UNHANDLED_SHOWN]:
            out.write(f"unhandled error: {_one_line(error)}\n")
        if len(emulator.unhandled) > UNHANDLED_SHOWN:
            out.write(f"... and {len(emulator.unhandled) - UNHANDLED_SHOWN} more\n")
    out.flush()
    return rows


def cmd_run(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    _compile(app)
    out = sys.stderr if args.json else sys.stdout
    progress = Progress(sys.stderr)
    emulator = _make_emulator(app, args, None if args.quiet else out, progress)
    interrupted = stopped = False
    until = None
    if args.max_time is not None:
        began, limit = emulator.now(), float(args.max_time)

        def until() -> bool:
            return emulator.now() - began >= limit

    with _app_logging(emulator, None if args.quiet else out, progress):
        try:
            stopped = until is not None and emulator.run(until=until, progress=progress)
            if until is None:
                emulator.run(progress=progress)
        except KeyboardInterrupt:
            interrupted = True
        except ReactiveError as exc:
            raise CliError(str(exc)) from None
        finally:
            progress.clear()
    try:
        return _finish_run(emulator, out, args, interrupted, stopped)
    finally:
        if isinstance(emulator, LocalHost):
            emulator.close()


def _finish_run(
    emulator: Host, out: TextIO, args: argparse.Namespace, interrupted: bool,
    stopped: bool = False,
) -> int:
    if args.json:
        rows = summary_rows(emulator)
        print(json.dumps({
            "interrupted": interrupted,
            "stopped_at_max_time": stopped,
            "instances": [dataclasses.asdict(row) for row in rows],
            "deliveries": emulator.deliveries,
            "activity_runs": emulator.activity_runs,
            "unhandled": list(emulator.unhandled),
        }, ensure_ascii=False, indent=2))
    else:
        rows = print_summary(emulator, out, list_unhandled=args.quiet, interrupted=interrupted,
                             stopped=stopped)
    if interrupted:
        return INTERRUPTED
    status = 0
    for row in rows:
        if row.status in ("failed", "terminated"):
            print(f"{row.name} {row.status}: {_wire_error_text(row.error)}", file=sys.stderr)
            status = FAILED
        elif row.status in ("running", "pending") and not (interrupted or stopped):
            waits = "; ".join(row.waits or []) or "nothing it can name"
            print(f"{row.name} ({row.instance_id}) is stuck: waits for {waits}", file=sys.stderr)
            status = FAILED
    if emulator.unhandled:
        print(
            f"{_count(len(emulator.unhandled), 'unhandled error')} during the run", file=sys.stderr
        )
        status = FAILED
    return status


def cmd_start(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    schema = _compile(app)
    info = find_orchestration(schema, args.name)
    op = build_orchestration(info, args.input)
    log_stream = None if args.quiet else sys.stderr
    progress = Progress(sys.stderr)
    emulator = _make_emulator(app, args, log_stream, progress)
    if isinstance(emulator, LocalHost):
        return _start_durable(emulator, info, op, args, log_stream, progress)
    client = emulator.client()
    with _app_logging(emulator, log_stream, progress):
        try:
            emulator.run(progress=progress)  # the startup orchestrations first
            if args.id is not None:
                existing = client.status(args.id)
                if existing is not None:
                    raise CliError(f"instance id {args.id!r} is taken by {existing.name}")
            iid = client.start(op, instance_id=args.id)

            def done() -> bool:
                status = client.status(iid)
                return status is not None and status.done

            emulator.run(until=done if args.wait else None, progress=progress)
        finally:
            progress.clear()
    return _report_start(info, iid, client.status(iid), args.wait, "the emulator is idle")


def _start_durable(
    host: LocalHost,
    info: OperationInfo,
    op: Orchestration[Any],
    args: argparse.Namespace,
    log_stream: TextIO | None,
    progress: Progress,
) -> int:
    """``start`` in a state folder: returns once the start is committed (``--wait``: once
    the instance is done); an existing id of the same orchestration is that instance."""
    client = host.client()
    try:
        with _app_logging(host, log_stream, progress):
            try:
                iid = client.start(op, instance_id=args.id)

                def settled() -> bool:
                    status = client.status(iid)
                    return status is not None and (status.done if args.wait else
                                                   status.status != "pending")

                host.run(until=settled, progress=progress)
            finally:
                progress.clear()
        status = client.status(iid)
    except ReactiveError as exc:
        raise CliError(str(exc)) from None
    finally:
        host.close()
    return _report_start(info, iid, status, args.wait, "nothing is left to run")


def _report_start(
    info: OperationInfo, iid: str, status: InstanceStatus | None, wait: bool, idle: str
) -> int:
    """Print what ``start`` ends with: the result as JSON (``--wait``) or the id and
    status; a failure on stderr with exit 1."""
    assert status is not None
    if status.status in ("failed", "terminated"):
        assert status.error is not None
        print(f"{info.name} {status.status}: {_error_text(status.error)}", file=sys.stderr)
        if not wait:
            print(f"{iid} {status.status}")
        return FAILED
    if not wait:
        print(f"{iid} {status.status}")
        return 0
    if status.status != "completed":
        raise CliError(
            f"{info.name} ({iid}) is still {status.status} but {idle} "
            "(is it waiting for an external event?)",
            FAILED,
        )
    print(json.dumps(info.result.dump_python(status.result, mode="json"), ensure_ascii=False))
    return 0


# -- listing -------------------------------------------------------------------------------

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
    schema = _compile(app)
    startup = {type(op) for op in schema.startup}
    lines = [f"application {schema.app_name!r}"]
    operations = _user_operations(schema)
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


# -- the parser ----------------------------------------------------------------------------


def _choices(text: str, allowed: Sequence[str], what: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    for item in chosen:
        if item not in allowed:
            raise CliError(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
    return chosen


def cmd_bench(args: argparse.Namespace) -> int:
    workloads = _choices(args.workloads, WORKLOADS, "workload")
    hosts = _choices(args.hosts, HOSTS, "host")
    try:
        partitions = [_positive_int(p) for p in args.partitions.split(",")]
        counts: list[int | None] = (
            [_positive_int(n) for n in args.n.split(",")] if args.n else [None]
        )
    except argparse.ArgumentTypeError as exc:
        raise CliError(f"--partitions / -n: {exc}") from None
    results = [r for n in counts for r in run_all(workloads, hosts, partitions, n)]
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=2) + "\n")
    if args.plot:
        Path(args.plot).write_text(throughput_svg(results))
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"{r.workload} on {r.host}: {r.errors} wrong results", file=sys.stderr)
    return FAILED if failed else 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run Reactive Machine applications on the in-process emulator.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('reactive-machine')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    target = argparse.ArgumentParser(add_help=False)
    target.add_argument(
        "app",
        metavar="MODULE:APP",
        help="module (dotted name or .py file) and App attribute; APP may be omitted "
        "when the module defines a single App",
    )
    emulator = argparse.ArgumentParser(add_help=False)
    emulator.add_argument(
        "--partitions", type=_positive_int, default=None, metavar="N",
        help="default: 4, or a state folder's own count",
    )
    emulator.add_argument(
        "--seed", type=int, default=0, metavar="S", help="schedule seed (default: 0)"
    )
    emulator.add_argument(
        "--faults",
        action="store_true",
        help="inject faults: message round-trips, partition restores, duplicate deliveries",
    )
    emulator.add_argument(
        "--clock",
        choices=("virtual", "real"),
        default="virtual",
        help="virtual (default) fires timers as soon as nothing else can run; real waits",
    )
    emulator.add_argument(
        "--quiet", "-q", action="store_true", help="do not print application log lines"
    )
    emulator.add_argument(
        "--state",
        metavar="DIR",
        help="durable mode: keep input logs and snapshots in DIR (real clock); a killed run "
        "resumes where it stopped when started again with the same DIR",
    )

    run = commands.add_parser(
        "run",
        parents=[target, emulator],
        help="run an application's startup orchestrations until quiescence",
        description="Run the application's startup orchestrations on the emulator until "
        "nothing is left to do, printing its log lines, then a summary. Exits with status "
        "1 if an instance failed or an error went unhandled.",
    )
    run.add_argument(
        "--max-time", type=float, metavar="SECONDS",
        help="stop once this much (virtual or real) time has passed: for applications "
        "with eternal orchestrations, which never let a run end on its own",
    )
    run.add_argument(
        "--json", action="store_true",
        help="print the summary as JSON on stdout (log lines go to stderr)",
    )
    run.set_defaults(handler=cmd_run)

    start = commands.add_parser(
        "start",
        parents=[target, emulator],
        help="start one orchestration (after the startup orchestrations)",
        description="Start orchestration NAME on a fresh emulator, after the application's "
        "startup orchestrations. Log lines go to stderr.",
    )
    start.add_argument("name", metavar="NAME", help="the orchestration class name")
    start.add_argument(
        "--input", default="{}", metavar="JSON",
        help="its fields as a JSON object, @FILE to read it from a file, - from stdin "
        "(default: {})"
    )
    start.add_argument("--id", metavar="INSTANCE_ID", help="the instance id (default: random)")
    start.add_argument(
        "--wait", action="store_true", help="print its result as JSON (or its error)"
    )
    start.set_defaults(handler=cmd_start)

    bench = commands.add_parser(
        "bench",
        help="run the fixed benchmark workloads and print a table",
        description="Run fixed workloads that verify their own results; a wrong result is "
        "counted as an error and makes the command exit with status 1.",
    )
    bench.add_argument(
        "--workloads", default=",".join(w for w in WORKLOADS), metavar="LIST",
        help=f"comma-separated, from: {', '.join(WORKLOADS)}",
    )
    bench.add_argument(
        "--hosts", default="emulator", metavar="LIST",
        help=f"comma-separated, from: {', '.join(HOSTS)}",
    )
    bench.add_argument(
        "--partitions", default="4", metavar="LIST", help="comma-separated counts (default: 4)"
    )
    bench.add_argument(
        "-n", metavar="LIST", help="items per workload, comma-separated for a sweep "
        "(default: each workload's own)",
    )
    bench.add_argument("--plot", metavar="FILE", help="also draw throughput as an SVG chart")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    bench.set_defaults(handler=cmd_bench)

    listing = commands.add_parser(
        "list", parents=[target], help="list the application's operations by kind"
    )
    listing.set_defaults(handler=cmd_list)
    from hosts.ops_cli import add_ops_commands  # serve and the instance commands

    add_ops_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except CliError as exc:
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # e.g. `reactive list app | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return FAILED
    return status


if __name__ == "__main__":
    sys.exit(main())
