"""An edge that cannot load a plugin tells the control plane: the slugs and why (a fixed phrase, never the plugin's
error message, which may quote its config) ride in its heartbeat, are stored in the edge registry and shown in the
API's edge resource and the admin's edge pages. Real NATS, a real bridge, a real edge process.

Before, only the edge's `/ready` (keys only) and its log said so: the registry, the API and the admin showed the
edge in sync with nothing amiss. The heartbeat's body is the edge's, so the bridge bounds what it stores: a hostile
edge's 10,000 slugs or megabyte of reason are not stored as sent."""

from __future__ import annotations

import asyncio

import msgspec
import nats
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from control_plane.edges.models import EdgeInstance
from control_plane.plugins.models import Plugin
from control_plane.plugins.services import plugin_register
from shared_sdk.sync_protocol import up_subject

from .cluster import config_version, seed_namespace, wait_until

pytestmark = [pytest.mark.timeout(240)]

MAX_STORED = 64
"""`shared_sdk.sync_protocol.MAX_PLUGINS_NOT_LOADED`."""
MAX_TOTAL = 1_000_000
"""`shared_sdk.sync_protocol.MAX_PLUGINS_NOT_LOADED_TOTAL`."""
NOT_LOADED = 70

SECRET_NETWORK = "not-a-network-secret-7f3a"
"""The bad config value: the plugin's error quotes it ("ip-filter: bad network ..."); it must not leave the edge."""


def _stored(edge_id: str) -> dict:
    edge = EdgeInstance.objects.filter(edge_id=edge_id).first()
    return getattr(edge, "plugins_not_loaded", {}) if edge is not None else {}


def test_an_edge_that_cannot_load_a_plugin_is_seen_in_the_registry_api_and_admin(cluster):
    seed = seed_namespace("ns-a", cluster.mock_url)
    plugin_register(
        data={
            "slug": "ip-filter",
            "entry_point": "ip-filter",
            "namespace": "ns-a",
            "config": {"deny": ["10.0.0.0/8"]},
            "global_order": 0,
            "failure_policy": "open",
        }
    )
    # a config its initialize refuses: the studio's registration check is bypassed, as an edge-only plugin's is
    Plugin.objects.filter(slug="ip-filter").update(config={"deny": [SECRET_NETWORK]})
    cluster.start_bridge()
    edge = cluster.start_edge(cluster.add_edge("a1", "ns-a"))
    wait_until(lambda: edge.ready().get("version", 0) >= config_version("ns-a"), message="config applied")
    assert edge.ready()["plugins_not_loaded"] == ["ip-filter"]
    assert edge.chat(seed.key)[0] == 200  # fail open: served without it

    wait_until(lambda: _stored("a1"), timeout=30, message="the registry hears of the plugin")
    assert _stored("a1") == {"ip-filter": "initialize raised"}

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-1")
    api = APIClient()
    api.force_authenticate(admin)
    listing = api.get("/api/v1/edges/?namespace=ns-a")
    assert SECRET_NETWORK not in listing.content.decode()
    (listed,) = listing.json()["results"]
    assert listed["plugins_not_loaded"] == {"ip-filter": "initialize raised"}
    assert api.get(f"/api/v1/edges/{listed['id']}/").json()["plugins_not_loaded"] == {"ip-filter": "initialize raised"}
    browser = Client()
    browser.force_login(admin)
    for url in ("/admin/edges/edgeinstance/", f"/admin/edges/edgeinstance/{listed['id']}/change/"):
        page = browser.get(url)
        assert page.status_code == 200 and b"ip-filter" in page.content and b"initialize raised" in page.content, url
        assert SECRET_NETWORK.encode() not in page.content

    # a hostile edge: 10,000 slugs, then one slug with a megabyte's worth of reason; what is stored is bounded
    many = {f"plugin-{i:05d}-{'x' * 40}": "initialize raised" for i in range(10_000)}
    long = {"p" * 1000: "r" * 900_000}
    asyncio.run(_beat(cluster.nats.url, "hostile", many))
    wait_until(lambda: _stored("hostile"), timeout=30, message="the hostile beat stored")
    stored = _stored("hostile")
    assert len(stored) == MAX_STORED and set(stored) < set(many)
    asyncio.run(_beat(cluster.nats.url, "hostile", long))
    wait_until(lambda: len(_stored("hostile")) == 1, timeout=30, message="the second hostile beat stored")
    ((key, reason),) = _stored("hostile").items()
    assert len(key) <= 127 and len(reason) <= 64


def test_an_edge_that_cannot_load_more_plugins_than_its_heartbeat_lists_says_how_many_more(cluster):
    """Past 64 plugins not loaded, the heartbeat lists 64 and says how many there are in all; the API gives the
    total and the admin "and N more". Before, the registry, the API and the admin showed 64 with no sign of the
    rest. The count is the edge's word, so the bridge bounds it as well, and an older edge's heartbeat (no count)
    still counts what it lists."""
    seed_namespace("ns-a", cluster.mock_url)
    plugin_register(
        data={"slug": "ip-filter", "entry_point": "ip-filter", "namespace": "ns-a", "config": {"deny": ["10.0.0.0/8"]}}
    )
    template = Plugin.objects.get(slug="ip-filter")
    copies = []
    for index in range(1, NOT_LOADED):
        copy = Plugin.objects.get(pk=template.pk)
        copy.pk, copy.slug = None, f"ip-filter-{index:02d}"
        copies.append(copy)
    Plugin.objects.bulk_create(copies)
    # configs their initialize refuses: the studio's registration check is bypassed, as an edge-only plugin's is
    Plugin.objects.update(config={"deny": [SECRET_NETWORK]})
    cluster.start_bridge()
    edge = cluster.start_edge(cluster.add_edge("a1", "ns-a"))
    wait_until(lambda: edge.ready().get("version", 0) >= config_version("ns-a"), message="config applied")
    assert len(edge.ready()["plugins_not_loaded"]) == NOT_LOADED

    wait_until(lambda: _stored("a1"), timeout=30, message="the registry hears of the plugins")
    registered = EdgeInstance.objects.get(edge_id="a1")
    assert len(registered.plugins_not_loaded) == MAX_STORED and registered.plugins_not_loaded_total == NOT_LOADED

    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-1")
    api = APIClient()
    api.force_authenticate(admin)
    (listed,) = api.get("/api/v1/edges/?namespace=ns-a").json()["results"]
    assert listed["plugins_not_loaded_total"] == NOT_LOADED and len(listed["plugins_not_loaded"]) == MAX_STORED
    browser = Client()
    browser.force_login(admin)
    more = f"and {NOT_LOADED - MAX_STORED} more".encode()
    for url in ("/admin/edges/edgeinstance/", f"/admin/edges/edgeinstance/{listed['id']}/change/"):
        page = browser.get(url)
        assert page.status_code == 200 and more in page.content, url

    # a hostile edge's count: fewer than it lists, or more than is believable; an older edge's beat has none
    two = {"p-1": "initialize raised", "p-2": "initialize raised"}
    for sent, stored in ((-5, 2), (2**63 - 1, MAX_TOTAL), (None, 2)):
        asyncio.run(_beat(cluster.nats.url, "hostile", two, total=sent))
        wait_until(lambda stored=stored: _total("hostile") == stored, timeout=30, message=f"{sent} stored as {stored}")
        assert _stored("hostile") == two
    page = browser.get("/admin/edges/edgeinstance/?q=hostile").content
    assert b"p-1 (initialize raised); p-2 (initialize raised)<" in page and b"initialize raised) and " not in page


def _total(edge_id: str) -> int | None:
    edge = EdgeInstance.objects.filter(edge_id=edge_id).first()
    return edge.plugins_not_loaded_total if edge is not None else None


async def _beat(nats_url: str, edge_id: str, plugins_not_loaded: dict[str, str], total: int | None = None) -> None:
    """A heartbeat as any edge of `ns-a` may send one on its own subject; without `total`, as an edge older than
    `plugins_not_loaded_total` sends it (the field absent)."""
    nc = await nats.connect(nats_url)
    try:
        beat = {"edge_id": edge_id, "namespace": "ns-a", "plugins_not_loaded": plugins_not_loaded}
        if total is not None:
            beat["plugins_not_loaded_total"] = total
        await nc.publish(up_subject("ns-a", edge_id, "heartbeat"), msgspec.msgpack.encode(beat))
        await nc.flush()
    finally:
        await nc.close()
