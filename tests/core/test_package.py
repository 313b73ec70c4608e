"""Package hygiene: `import reactive` stays light, and its public names are complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import reactive
from reactive import errors, model

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("azure", "boto3", "botocore", "hosts")


def test_importing_reactive_pulls_in_no_cloud_sdk_or_host() -> None:
    script = (
        "import json, sys\n"
        "import reactive\n"
        "json.dump(sorted(sys.modules), sys.stdout)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    loaded = json.loads(done.stdout)
    assert "reactive" in loaded
    offending = [
        name for name in loaded if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert offending == []


def test_all_is_sorted() -> None:
    assert reactive.__all__ == sorted(reactive.__all__)


def test_all_is_unique_and_every_name_exists() -> None:
    assert len(set(reactive.__all__)) == len(reactive.__all__)
    for name in reactive.__all__:
        assert hasattr(reactive, name), name


def test_all_lists_every_public_attribute() -> None:
    public = {
        name
        for name, value in vars(reactive).items()
        if not name.startswith("_") and type(value).__name__ != "module"
    }
    assert public == set(reactive.__all__)


def test_all_exports_the_whole_programming_model_and_user_facing_errors() -> None:
    exported = set(reactive.__all__)
    assert set(model.__all__) <= exported
    host_facing = {"CorruptSnapshotError"}  # raised to hosts restoring snapshots, not to apps
    assert set(errors.__all__) - host_facing <= exported


def test_all_covers_the_documented_import_block() -> None:
    doc = (ROOT / "docs" / "programming-model.md").read_text()
    block = re.search(r"from reactive import \(([^)]*)\)", doc)
    assert block is not None
    documented = {name.strip() for name in block.group(1).split(",") if name.strip()}
    assert documented <= set(reactive.__all__)
