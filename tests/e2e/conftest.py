import pytest

from .nats_server import NatsServer


@pytest.fixture
def nats_server():
    """A private JetStream server per test (the failure tests stop and restart it)."""
    server = NatsServer().start()
    yield server
    server.cleanup()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def cluster(request, transactional_db, processes, nats_server, tmp_path):
    """Real processes (tests/e2e/cluster.py) with the mock LLM started; on failure, every process's last output
    goes into the test report."""
    from tests.support.django_db import test_database_url

    from .cluster import Cluster

    cluster = Cluster(processes, nats_server, tmp_path, test_database_url())
    cluster.start_mock()
    yield cluster
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        handles = [cluster.bridge] + [edge.handle for edge in cluster.edges.values()]
        for handle in handles:
            if handle is not None:
                report.sections.append((f"process {handle.name}", handle.tail(80)))


@pytest.fixture
def nats_cluster():
    """Three clustered JetStream nodes (tests/e2e/nats_cluster.py) that a test may kill one by one."""
    from .nats_cluster import NatsCluster

    cluster = NatsCluster().start()
    yield cluster
    cluster.cleanup()


@pytest.fixture
def cluster_of_three(transactional_db, processes, nats_cluster, tmp_path):
    """Like `cluster`, on the three-node NATS cluster; the bridge keeps 3 replicas of every stream and bucket."""
    from tests.support.django_db import test_database_url

    from .cluster import Cluster

    cluster = Cluster(processes, nats_cluster, tmp_path, test_database_url(), bridge_env={"NATS_REPLICAS": "3"})
    cluster.start_mock()
    return cluster
