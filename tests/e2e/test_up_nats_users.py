"""`fjordgate up`'s embedded NATS gives each edge its own user with deploy/nats/nats.conf's permissions (issue 13:
every local edge had the all-powerful user), and an edge process is handed only its own credentials."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout

from control_plane.bridge.runner import ensure_up_stream
from fjordgate.embedded import free_port, nats_plan, run_server
from fjordgate.nats_users import edge_permissions
from fjordgate.state import UpSecrets
from fjordgate.up import Stack, _config
from shared_sdk.sync_protocol import KEY_MANIFEST, UP_STREAM, SnapshotManifest, config_bucket, decode

from .test_nats_security import CONF, _permission_errors, _publish_config

pytestmark = [pytest.mark.timeout(60)]


def _deploy_edge_block(user: str) -> tuple[list[str], list[str]]:
    block = CONF.read_text().split(f"{{ user: {user},", 1)[1].split("} }", 1)[0]
    publish, subscribe = (
        re.findall(r'"([^"]+)"', re.search(rf"{kind}: \[(.*?)\]", block, re.S).group(1))
        for kind in ("publish", "subscribe")
    )
    return publish, subscribe


def test_generated_edge_permissions_are_those_of_the_deployed_config():
    assert edge_permissions("demo", "edge-demo-1") == _deploy_edge_block("edge-demo-1")
    assert edge_permissions("demo", "edge-demo-2") == _deploy_edge_block("edge-demo-2")


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """`fjordgate up`'s stack with two edges in `demo`, as it plans its embedded NATS (nothing started)."""
    monkeypatch.setenv("FJORDGATE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("NATS_URL", raising=False)
    secrets = UpSecrets(*(f"secret-{i}" for i in range(5)), nats_password="control-plane-pw", redis_password="r")
    return Stack(_config(2, True), secrets, supervisor=None)


async def test_up_edge_user_is_confined_to_its_own_subjects_and_namespace(stack):
    edge_env = stack.edge_nats_env("edge-1")
    assert edge_env["NATS_USER"] == "edge-1" and "control-plane-pw" not in str(edge_env)
    assert edge_env["NATS_PASSWORD"] != stack.edge_nats_env("edge-2")["NATS_PASSWORD"]
    users = stack.edge_nats_users()
    assert [(u.edge_id, u.namespace) for u in users] == [("edge-1", "demo"), ("edge-2", "demo")]

    with tempfile.TemporaryDirectory(prefix="fj-up-nats-") as workdir:
        plan = nats_plan(Path(workdir), free_port(), password="control-plane-pw", edges=users)
        with run_server(plan, Path(workdir) / "nats.log") as server:
            control = await nats.connect(server.url)  # the control plane's user, as the bridge connects
            js = control.jetstream(timeout=5)
            await ensure_up_stream(js)
            await _publish_config(js, "demo")
            await _publish_config(js, "other")
            url = server.url.split("@", 1)[1]
            nc, errors = await _permission_errors(f"nats://{url}", "edge-1", edge_env["NATS_PASSWORD"], "_INBOX.edge-1")
            try:
                ejs = nc.jetstream(timeout=1.5)
                own = await ejs.key_value(config_bucket("demo"))
                assert decode((await own.get(KEY_MANIFEST)).value, SnapshotManifest).namespace == "demo"
                await ejs.publish("fj.up.demo.edge-1.telemetry", b"own")  # acked: allowed
                with pytest.raises((NatsTimeout, nats.js.errors.Error, nats.errors.Error)):
                    other = await ejs.key_value(config_bucket("other"))
                    await other.get(KEY_MANIFEST)
                before = (await js.stream_info(UP_STREAM)).state.messages
                for subject in ("fj.up.demo.edge-2.telemetry", "fj.up.other.edge-1.telemetry"):
                    with pytest.raises((NatsTimeout, nats.errors.Error)):
                        await ejs.publish(subject, b"forged")
                assert (await js.stream_info(UP_STREAM)).state.messages == before == 1
            finally:
                await nc.close()
                await control.close()
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await nats.connect(
                    f"nats://{url}", user="edge-2", password=edge_env["NATS_PASSWORD"], allow_reconnect=False
                )


def test_an_up_edge_gets_none_of_the_control_planes_secrets(stack, monkeypatch):
    """An edge runs next to clients: it must not hold what opens the database or decrypts vendor keys at rest
    (`fjordgate up` used to hand every edge DATABASE_URL and the Django and Fjordgate secret keys)."""
    monkeypatch.setenv("FJORDGATE_OIDC_RP_CLIENT_SECRET", "oidc-secret")
    monkeypatch.setenv("FJORDGATE_EMAIL_PASSWORD", "mail-secret")
    monkeypatch.setenv("FJORDGATE_PLUGIN_IMPORT_ROOTS", "plugins,acme_plugins")
    stack.database_url, stack.redis_url = "postgresql://fj:db-secret@127.0.0.1/fj", "redis://:r@127.0.0.1:6379/0"
    control = stack.child_env()
    assert control["DATABASE_URL"] and control["DJANGO_SECRET_KEY"] and control["FJORDGATE_SECRET_KEY"]

    edge = stack.edge_env(0)
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "FJORDGATE_SECRET_KEY", "DJANGO_SETTINGS_MODULE"):
        assert name not in edge, name
    assert not any(secret in str(edge) for secret in ("db-secret", "oidc-secret", "mail-secret", "control-plane-pw"))
    assert edge["FJORDGATE_EDGE_SECRET"] == control["FJORDGATE_EDGE_SECRET"]  # vendor keys in transit
    assert edge["FJORDGATE_PLUGIN_IMPORT_ROOTS"] == "plugins,acme_plugins"
    assert (edge["EDGE_ID"], edge["EDGE_NAMESPACE"], edge["NATS_USER"]) == ("edge-1", "demo", "edge-1")
