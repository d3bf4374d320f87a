import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from control_plane.audit.models import AuditEntry
from control_plane.edges.models import EdgeInstance, EdgeReloadRequest, EdgeStatus
from control_plane.edges.services import edge_mark_stale, edge_record_heartbeat, published_config_record

pytestmark = pytest.mark.django_db


def beat(edge_id="e1", checksum="abc", version=3):
    return edge_record_heartbeat(edge_id=edge_id, namespace="demo", version=version, checksum=checksum)


def test_status_follows_the_published_checksum_and_heartbeat_age():
    assert beat().status == EdgeStatus.PENDING  # nothing published yet
    published_config_record(namespace="demo", version=3, checksum="abc", chunk_count=1, total_bytes=10)
    assert EdgeInstance.objects.get().status == EdgeStatus.IN_SYNC
    published_config_record(namespace="demo", version=4, checksum="def", chunk_count=1, total_bytes=10)
    assert EdgeInstance.objects.get().status == EdgeStatus.PENDING
    from control_plane.edges.models import PublishedConfig

    PublishedConfig.objects.update(published_at=timezone.now() - dt.timedelta(hours=1))
    assert edge_mark_stale() == 1
    assert EdgeInstance.objects.get().status == EdgeStatus.STALE
    EdgeInstance.objects.update(last_heartbeat=timezone.now() - dt.timedelta(hours=1))
    edge_mark_stale()
    assert EdgeInstance.objects.get().status == EdgeStatus.OFFLINE


def test_api_lists_edges_and_queues_reloads_for_admins_only():
    beat("e1")
    beat("e2")
    client = APIClient()
    assert client.get("/api/v1/edges/").status_code in (401, 403)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-1")
    client.force_authenticate(admin)
    listing = client.get("/api/v1/edges/?namespace=demo").json()
    assert {edge["edge_id"] for edge in listing["results"]} == {"e1", "e2"}
    edge = EdgeInstance.objects.get(edge_id="e2")
    assert client.post(f"/api/v1/edges/{edge.pk}/reload/").status_code == 202
    assert client.post("/api/v1/edges/reload/", {"namespace": "demo"}, format="json").status_code == 202
    bad = client.post("/api/v1/edges/reload/", {}, format="json")
    assert bad.status_code == 400 and "namespace" in str(bad.json())
    assert set(EdgeReloadRequest.objects.values_list("edge_id", flat=True)) == {"e2", ""}
    # who asked the fleet to reload, and for what, is in the audit trail
    asked = AuditEntry.objects.filter(object_type="edges.edgereloadrequest").order_by("id")
    assert [(e.action, e.actor_user_id, e.source, e.namespace) for e in asked] == [
        ("create", admin.pk, "api", "demo")
    ] * 2
    assert [e.changes["edge_id"][1] for e in asked] == ["e2", ""]


def _worker_beat(worker, *, workers=2, in_flight=0, spool_records=0):
    return edge_record_heartbeat(
        edge_id="multi",
        namespace="demo",
        version=3,
        checksum="abc",
        in_flight=in_flight,
        spool_records=spool_records,
        worker=worker,
        workers=workers,
    )


def test_the_workers_of_an_edge_are_one_edge_with_their_count_and_summed_figures():
    _worker_beat("0", in_flight=2, spool_records=5)
    edge = _worker_beat("1", in_flight=3, spool_records=1)
    assert EdgeInstance.objects.count() == 1, "workers beat as one edge, not one row each"
    assert (edge.workers, edge.in_flight, edge.spool_records) == (2, 5, 6)
    edge = _worker_beat("0", in_flight=0, spool_records=0)  # worker 0 again: its figures replace its old ones
    assert (edge.workers, edge.in_flight, edge.spool_records) == (2, 3, 1)
    assert set(edge.worker_beats) == {"0", "1"}

    # a worker not heard for the offline window no longer counts
    beats = edge.worker_beats
    beats["1"]["at"] -= 3600
    EdgeInstance.objects.filter(pk=edge.pk).update(worker_beats=beats)
    assert _worker_beat("0").workers == 1

    # the edge restarted as a single process: one worker, no per-worker figures
    single = edge_record_heartbeat(edge_id="multi", namespace="demo", version=3, checksum="abc", in_flight=4)
    assert (single.workers, single.worker_beats, single.in_flight) == (1, {}, 4)


def test_the_api_and_admin_show_an_edges_workers():
    _worker_beat("0")
    _worker_beat("1")
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-1")
    client = APIClient()
    client.force_authenticate(admin)
    (edge,) = client.get("/api/v1/edges/?namespace=demo").json()["results"]
    assert (edge["edge_id"], edge["workers"], sorted(edge["worker_beats"])) == ("multi", 2, ["0", "1"])
    from django.test import Client

    browser = Client()
    browser.force_login(admin)
    page = browser.get("/admin/edges/edgeinstance/")
    assert page.status_code == 200 and b"column-workers" in page.content


def test_the_admin_lists_the_edges_that_could_not_load_a_plugin():
    """An operator filters the edge list to those whose heartbeat names plugins they could not load (before: no such
    filter; the admin took the parameter as a lookup of the JSON field and listed no edge at all)."""
    edge_record_heartbeat(
        edge_id="broken",
        namespace="demo",
        version=3,
        checksum="abc",
        plugins_not_loaded={"ip-filter": "initialize raised"},
    )
    beat(edge_id="healthy")
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-1")
    from django.test import Client

    browser = Client()
    browser.force_login(admin)
    some = browser.get("/admin/edges/edgeinstance/?plugins_not_loaded=yes")
    assert some.status_code == 200 and b"broken" in some.content and b"healthy" not in some.content
    assert b"ip-filter (initialize raised)" in some.content
    none = browser.get("/admin/edges/edgeinstance/?plugins_not_loaded=no")
    assert none.status_code == 200 and b"healthy" in none.content and b"broken" not in none.content
