"""The Functions deployment's requirements.txt: pinned as pyproject.toml pins, and enough
for everything function_app.py imports (the HTTP API included)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def requirements() -> list[Requirement]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def pyproject_pins() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        pins.update(extra)
    return {str(Requirement(p)) for p in pins}


def test_every_requirement_is_pinned_as_in_pyproject() -> None:
    pins = pyproject_pins()
    for requirement in requirements():
        assert str(requirement) in pins, f"{requirement} is not pinned so in pyproject.toml"
    names = {r.name for r in requirements()}
    assert {"azure-functions", "azure-eventhub", "azure-storage-blob", "pydantic"} <= names


# Imports the function app in a process where every installed distribution outside
# requirements.txt (and what it depends on) is hidden, as on a fresh deployment: an optional
# import (``try: import simplejson``) then takes its fallback, a needed one fails.
ISOLATED = """
import importlib.abc, json, sys
hidden = set(json.load(sys.stdin))

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.origin in hidden:
                    raise ModuleNotFoundError(f"No module named {name!r} (not deployed)")
                return spec
        return None

sys.meta_path.insert(0, Hide())
import function_app
import hosts.http  # the HTTP function serves it through AsgiMiddleware
try:
    import uvicorn
except ModuleNotFoundError:
    print("imported; hidden ones stay hidden")
"""


def _closure(names: set[str]) -> set[str]:
    """The distributions ``names`` install, with their dependencies (no extras)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = metadata.distribution(todo.pop()).metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or ():
            dep = Requirement(text)
            if dep.marker is None or dep.marker.evaluate({"extra": ""}):
                todo.append(dep.name)
    return seen


def test_requirements_cover_what_the_function_app_imports() -> None:
    deployed = _closure({r.name for r in requirements()
                         if r.marker is None or r.marker.evaluate()})
    hidden = [
        str(dist.locate_file(file))
        for dist in metadata.distributions()
        if dist.metadata["Name"].lower() not in deployed | {"reactive-machine"}
        for file in dist.files or ()
        if file.suffix in (".py", ".so")
    ]
    assert "uvicorn" not in deployed  # installed here (the http extra), not deployed
    run = subprocess.run([sys.executable, "-c", ISOLATED], cwd=ROOT, input=json.dumps(hidden),
                         capture_output=True, text=True)
    last = (run.stderr.strip().splitlines() or [""])[-1]
    assert run.returncode == 0 and "hidden ones stay hidden" in run.stdout, last


def test_the_package_keeps_what_function_app_imports() -> None:
    """.funcignore leaves out the tests and tooling, never a package the app imports."""
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text()
               .splitlines() if line.strip() and not line.startswith("#")}
    for kept in ("function_app.py", "host.json", "requirements.txt", "reactive", "hosts",
                 "samples"):
        assert kept not in ignored, kept
    assert "tests" in ignored and ".venv" in ignored
