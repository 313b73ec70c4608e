"""The SAM template: generated from infra/aws/generate.py, lint-clean, least privilege."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra" / "aws"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", INFRA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_template_is_generated() -> None:
    assert (INFRA / "template.yaml").read_text() == _generator().render(), (
        "infra/aws/template.yaml is stale: run python infra/aws/generate.py"
    )


def test_the_template_lints_clean() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run([str(cfn_lint), str(INFRA / "template.yaml")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _holds(condition: Any, partitions: str, conditions: dict[str, Any]) -> bool:
    if "Fn::Or" in condition:
        return any(_holds(c, partitions, conditions) for c in condition["Fn::Or"])
    left, right = condition["Fn::Equals"]
    assert left == {"Ref": "Partitions"}
    return bool(right == partitions)


@pytest.mark.parametrize("partitions", ["1", "2", "4", "8", "16", "32"])
def test_each_partition_count_gets_that_many_queues(partitions: str) -> None:
    template = _generator().template()
    conditions = template["Conditions"]
    resources = template["Resources"]
    present = {
        name for name, resource in resources.items()
        if "Condition" not in resource
        or _holds(conditions[resource["Condition"]], partitions, conditions)
    }
    count = int(partitions)
    for kind in ("PartitionQueue", "PartitionDeadLetterQueue", "PartitionMapping"):
        assert {n for n in present if n.startswith(kind) and n[len(kind):].isdigit()} == {
            f"{kind}{p}" for p in range(count)
        }
    mapping = resources["PartitionMapping0"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_policies_name_their_resources() -> None:
    for name, resource in _generator().template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for policy in resource["Properties"]["Policies"]:
            for statement in policy["Statement"]:
                assert statement["Resource"] != "*", name
                assert not any(a.endswith(":*") for a in statement["Action"]), name


def test_the_http_api_has_a_function_url_and_a_key() -> None:
    template = _generator().template()
    function = template["Resources"]["HttpFunction"]["Properties"]
    assert function["Handler"] == "hosts.aws.entry.http_handler"
    assert function["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert function["Environment"]["Variables"]["REACTIVE_API_KEY"] == {"Ref": "ApiKey"}
    assert template["Parameters"]["ApiKey"]["NoEcho"] is True
    assert template["Parameters"]["ApiKey"]["MinLength"] >= 16
