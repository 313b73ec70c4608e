"""boto3 stays inside hosts/aws: the library and the other hosts import no AWS SDK."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SDK = re.compile(r"^\s*(import|from)\s+(boto3|botocore|moto|awslambdaric)\b", re.M)


def test_only_the_aws_host_imports_the_sdk() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("reactive", "hosts")
        for path in (REPO / folder).rglob("*.py")
        if SDK.search(path.read_text()) and "hosts/aws" not in path.as_posix()
    ]
    assert offenders == []


def test_importing_the_library_loads_no_sdk() -> None:
    code = ("import sys, reactive, reactive.hosting.worker, reactive.hosting.client; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('boto3', 'botocore', 'moto')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"
