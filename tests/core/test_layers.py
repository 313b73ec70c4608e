"""The direction of imports, read from the source (ast): the model at the bottom, the
compiled schema and the core above it, the registry and the host seam above the core, the
hosts on top; no circle among the library's modules.

Type-only imports (under ``if TYPE_CHECKING:``) count for the direction rules; only the
model may use one, to annotate ``execute`` with the public context Protocols."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "reactive.core.partition"
    target: str  # the imported module, e.g. "reactive.schema"
    line: int
    typing_only: bool

    def __str__(self) -> str:
        kind = " (type-only)" if self.typing_only else ""
        return f"{self.source}:{self.line} imports {self.target}{kind}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = node.module or ""
    if node.level:  # relative: resolve against the importing package
        anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*anchor, base] if base else anchor)
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if _is_module(sub) else base


def imports_of(top: str) -> list[Import]:
    found: list[Import] = []
    for path in sorted((ROOT / top).rglob("*.py")):
        source = _module_name(path)
        package = source if path.name == "__init__.py" else source.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))

        def visit(node: ast.AST, typing_only: bool, source: str = source,
                  package: str = package) -> None:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                for child in node.body:
                    visit(child, True)
                for child in node.orelse:
                    visit(child, typing_only)
                return
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(node, package):
                    found.append(Import(source, target, node.lineno, typing_only))
            for inner in ast.iter_child_nodes(node):
                visit(inner, typing_only)

        visit(tree, False)
    return found


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


LIBRARY = imports_of("reactive")
HOSTS = imports_of("hosts")


def test_the_core_never_imports_the_registry_the_seam_or_hosts() -> None:
    wrong = [
        str(i) for i in LIBRARY
        if _under(i.source, "reactive.core")
        and _under(i.target, "reactive.app", "reactive.hosting", "hosts")
    ]
    assert wrong == []


def test_the_model_imports_nothing_of_the_package_but_errors() -> None:
    wrong = [
        str(i) for i in LIBRARY
        if i.source == "reactive.model" and _under(i.target, "reactive")
        and i.target != "reactive.errors"
        # annotations only: the public context Protocols that ``execute`` takes
        and not (i.typing_only and i.target == "reactive.context")
    ]
    assert wrong == []


def test_the_public_types_beside_the_model_do_not_depend_on_the_core() -> None:
    public = ("reactive.context", "reactive.futures", "reactive.errors", "reactive.placement")
    wrong = [
        str(i) for i in LIBRARY
        if _under(i.source, *public)
        and _under(i.target, "reactive") and not _under(i.target, "reactive.model", *public)
    ]
    assert wrong == []


def test_the_compiled_schema_needs_neither_the_registry_nor_the_core() -> None:
    wrong = [
        str(i) for i in LIBRARY
        if i.source == "reactive.schema"
        and _under(i.target, "reactive.app", "reactive.core", "reactive.hosting")
    ]
    assert wrong == []


def test_the_core_modules_depend_downwards() -> None:
    """The partition is built from parts (key locks, timers, the codec) that never import
    it; the codec, the history format and the synchronization rules never import the
    runner, and the runner never imports the partition (it talks to ``RunSite``)."""
    forbidden = {  # importer -> what it must not import
        **dict.fromkeys(
            ("reactive.core.keys", "reactive.core.timers", "reactive.core.snapshot",
             "reactive.core.partition_base", "reactive.core.runner", "reactive.core.history",
             "reactive.core.sync_rules", "reactive.core.orchestration_context"),
            ("reactive.core.partition",),
        ),
        "reactive.core.snapshot": ("reactive.core.partition", "reactive.core.runner"),
        "reactive.core.history": ("reactive.core.partition", "reactive.core.runner"),
        "reactive.core.sync_rules": ("reactive.core.partition", "reactive.core.runner"),
        "reactive.core.orchestration_context": ("reactive.core.partition",
                                                "reactive.core.runner"),
        "reactive.core.partition_base": ("reactive.core.partition", "reactive.core.keys",
                                         "reactive.core.timers", "reactive.core.snapshot"),
    }
    wrong = [
        str(i) for i in LIBRARY
        if _under(i.target, *forbidden.get(i.source, ()))
    ]
    assert wrong == []


def test_the_library_never_imports_hosts_not_even_for_python_dash_m() -> None:
    """``python -m reactive`` finds the CLI through the installed ``reactive`` console
    script's entry point, not by importing it: no module of the library names hosts."""
    wrong = [str(i) for i in LIBRARY if _under(i.target, "hosts")]
    assert wrong == []
    mentions = [
        f"{path.relative_to(ROOT)}: {node.value!r}"
        for path in sorted((ROOT / "reactive").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and node.value.startswith(("hosts.", "hosts:"))
    ]
    assert mentions == []  # no import_module("hosts.cli") either


def test_hosts_import_only_reactive_and_the_hosting_seam() -> None:
    wrong = [
        str(i) for i in HOSTS
        if _under(i.target, "reactive") and i.target != "reactive"
        and not _under(i.target, "reactive.hosting")
    ]
    assert wrong == []


def test_no_import_circle_in_the_library() -> None:
    """Among the library's modules, imports (type-only ones too) form no cycle; the one
    exception is the model's annotations naming the context Protocols built on it."""
    graph: dict[str, set[str]] = {}
    for i in LIBRARY:
        if (i.source, i.target) == ("reactive.model", "reactive.context") and i.typing_only:
            continue
        if _under(i.target, "reactive") and i.target != "reactive":
            graph.setdefault(i.source, set()).add(i.target)
    graph.pop("reactive", None)  # the package's __init__ re-exports the public names
    done: set[str] = set()
    path: list[str] = []

    def cycle_from(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            found = cycle_from(nxt)
            if found:
                return found
        path.pop()
        done.add(node)
        return None

    cycles = [c for c in (cycle_from(n) for n in sorted(graph)) if c]
    assert cycles == [], " -> ".join(cycles[0])


def test_the_reader_sees_imports_where_they_are() -> None:
    """The reader itself: it tells type-only imports from the rest."""
    by_source = {(i.source, i.target): i for i in LIBRARY}
    assert by_source[("reactive.model", "reactive.context")].typing_only
    assert not by_source[("reactive.core.partition", "reactive.schema")].typing_only
    assert any(i.source == "hosts.cli.run" and i.target == "reactive" for i in HOSTS)
