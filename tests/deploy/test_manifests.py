"""Every deployment file is checked offline against its format's own validator, and shows the production topology
(a three-node NATS cluster that the bridge and edges all know): the compose file against the Compose
Specification's JSON Schema (vendored in deploy/schemas/), the Kubernetes manifests with kubernetes-validate (it
carries the API schemas), the NATS configuration by nats-server's own configuration test (`-t`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.e2e.nats_server import nats_server_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.31.0"
NATS_NODES = ["nats-1", "nats-2", "nats-3"]
NATS_ENV = {  # what the compose file / the Kubernetes Secret give every node
    "NATS_SERVER_NAME": "nats-1",
    "FJ_NATS_BRIDGE_PASSWORD": "b",
    "FJ_NATS_EDGE_DEMO_1_PASSWORD": "e1",
    "FJ_NATS_EDGE_DEMO_2_PASSWORD": "e2",
}


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _manifests() -> list[tuple[str, dict]]:
    return [
        (path.name, doc)
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(_compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_runs_a_three_node_nats_cluster_that_every_client_knows() -> None:
    services = _compose()["services"]
    assert "nats" not in services
    for node in NATS_NODES:
        assert services[node]["environment"]["NATS_SERVER_NAME"] == node
        assert "./nats/nats.conf:/etc/nats/nats.conf:ro" in services[node]["volumes"]
    clients = {
        name: s["environment"]["NATS_URL"] for name, s in services.items() if "NATS_URL" in s.get("environment", {})
    }
    assert {"bridge", "edge-1", "edge-2"} <= set(clients)
    for name, url in clients.items():
        assert url.split(",") == [f"nats://{node}:4222" for node in NATS_NODES], name
    assert services["bridge"]["environment"]["NATS_REPLICAS"] == "3"


@pytest.mark.parametrize("name,doc", _manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_kubernetes_manifest_is_valid(name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validation_catches_a_misspelt_field() -> None:
    """The check above has teeth: an unknown field (strict) or a wrong type is refused."""
    statefulset = next(doc for name, doc in _manifests() if name == "nats.yaml" and doc["kind"] == "StatefulSet")
    broken = json.loads(json.dumps(statefulset))
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kubernetes_runs_nats_as_a_statefulset_of_three_routed_to_each_other() -> None:
    nats = next(doc for name, doc in _manifests() if name == "nats.yaml" and doc["kind"] == "StatefulSet")
    spec = nats["spec"]
    assert spec["replicas"] == 3
    args = spec["template"]["spec"]["containers"][0]["args"]
    routes = args[args.index("--routes") + 1].split(",")
    name, service, namespace = nats["metadata"]["name"], spec["serviceName"], nats["metadata"]["namespace"]
    assert routes == [f"nats-route://{name}-{i}.{service}.{namespace}.svc:6222" for i in range(3)]


def test_nats_configuration_passes_the_servers_own_check() -> None:
    conf = DEPLOY / "nats" / "nats.conf"
    text = conf.read_text()
    for node in NATS_NODES:
        assert f"nats-route://{node}:6222" in text
    result = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(conf)], env=NATS_ENV, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    missing = {k: v for k, v in NATS_ENV.items() if k != "NATS_SERVER_NAME"}
    result = subprocess.run([nats_server_binary(), "-t", "-c", str(conf)], env=missing, capture_output=True, timeout=30)
    assert result.returncode != 0, "the check must fail when a node is not told its name"
