"""``python -m samples`` (what ``make run`` shows) runs every sample and reports results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_python_m_samples() -> None:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-m", "samples"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for name in ("hello", "counter", "bank", "pingpong", "blob_backup"):
        assert f"== {name} (" in out
    assert "HelloStartup returned 100 results: ['Hello World']" in out
    assert "'Hello World was called' was logged 100 times" in out
    assert "5 parallel increments in an orchestration -> [4, 5, 6, 7, 8]" in out
    assert "signing up alice again -> SignUpError" in out
    assert "an approved transfer of 20: 'waiting for a decision', then approved -> " \
        "'transferred'" in out
    assert "counted 100 pings" in out and "counted 100 pongs" in out
    assert "copied 8 blobs from container/ to backup/: 18000 bytes" in out
