"""Static checks of infra/azure/main.bicep and host.json (no Bicep compiler is available
here): the template creates what the host needs and hands the app the settings its code
reads; host.json is the Event Hubs extension's shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hosts.azure.functions import build_function_app
from hosts.azure.local import CHECKPOINT_EVERY
from hosts.azure.settings import AzureSettings
from samples.hello import app as hello

ROOT = Path(__file__).resolve().parents[2]
BICEP = (ROOT / "infra" / "azure" / "main.bicep").read_text()


def app_settings() -> dict[str, str]:
    return dict(re.findall(r"\{ name: '([^']+)', value: ([^}]+?) \}", BICEP))


def test_resources_and_roles() -> None:
    for kind in ("Microsoft.Storage/storageAccounts@", "Microsoft.EventHub/namespaces@",
                 "Microsoft.EventHub/namespaces/eventhubs@", "Microsoft.Web/sites@",
                 "Microsoft.Web/serverfarms@", "Microsoft.Authorization/roleAssignments@",
                 "Microsoft.Storage/storageAccounts/managementPolicies@"):
        assert f"'{kind}" in BICEP, kind
    assert "partitionCount: partitions" in BICEP
    assert "type: 'SystemAssigned'" in BICEP
    assert "allowSharedKeyAccess: false" in BICEP and "disableLocalAuth: true" in BICEP
    # blob data owner, event hubs receiver and sender, and no broader role
    roles = set(re.findall(r"'([0-9a-f-]{36})'", BICEP))
    assert roles == {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "a638d3c7-ab3a-418d-83e6-5f17a39d4fde",
        "2b629674-e913-4c01-ae53-ef4638d8f975",
    }
    assert BICEP.count("principalId: app.identity.principalId") == 4


def test_app_settings_are_what_the_code_reads() -> None:
    settings = app_settings()
    env = {name: "x" for name in settings}
    env["REACTIVE_PARTITIONS"] = "4"
    parsed = AzureSettings.from_env(env)
    assert parsed.storage_url and parsed.eventhubs_namespace and parsed.api_key
    # every binding expression of the functions names a setting the template sets
    functions = build_function_app(hello.app).get_functions()
    for function in functions:
        for expression in re.findall(r"%([^%]+)%", function.get_function_json()):
            assert expression in settings, expression
    connections = {b["connection"] for f in functions
                   for b in json.loads(f.get_function_json())["bindings"] if "connection" in b}
    for connection in connections:
        assert f"{connection}__fullyQualifiedNamespace" in settings


def test_host_json() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    hubs = host["extensions"]["eventHubs"]
    assert hubs["maxEventBatchSize"] <= hubs["prefetchCount"]
    # the local runner checkpoints as often as the Functions host will
    assert hubs["batchCheckpointFrequency"] == CHECKPOINT_EVERY
    assert host["extensions"]["http"]["routePrefix"] == ""
    documented = (ROOT / "docs" / "azure.md").read_text()
    for key in hubs:
        assert f"eventHubs.{key}" in documented, key
