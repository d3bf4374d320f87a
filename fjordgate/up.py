"""`fjordgate up`: the whole system on one machine, for a newcomer's first minute and for demos.

Order of events, and why:
1. Servers: PostgreSQL, NATS (JetStream) and Redis from the state directory, unless DATABASE_URL / NATS_URL /
   REDIS_URL point elsewhere (then those are probed, and used).
2. The mock upstream and the edges start at once: they need only NATS, and they boot while Django migrates.
3. One set-up step (migrate, static files, the admin user, the demo seed), then web, bridge, worker and beat
   in parallel.
4. Wait until each process is healthy (HTTP health endpoints; Celery by its "ready" log line), print the
   admin URL, credentials and copy-paste examples, then supervise until Ctrl-C or until a child dies.
Every child is a `fjordgate <subcommand>` process, the same command an operator runs in Docker or Kubernetes,
so `up` exercises the production start-up path rather than a private one.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from .cli import django_command
from .embedded import ServerPlan, ServerStartError, nats_plan, port_is_free, postgres_plan, redis_plan
from .env import env_float, env_int, env_str, env_url, exit_on_config_error, fail
from .nats_users import NatsEdgeUser, edge_nats_password
from .preflight import DATABASE_SCHEMES, NATS_SCHEMES, REDIS_SCHEMES
from .probes import Unreachable, check_http, check_nats, check_postgres, check_redis, redact_url
from .state import StateDir, UpSecrets, state_dir_from_env
from .supervisor import ManagedProcess, StartupFailed, StopRequested, Supervisor

__all__ = ["run_up"]

CELERY_WORKER_READY = r"celery@\S+ ready\."
CELERY_BEAT_READY = r"beat: Starting\.\.\."

# The set-up step, run by `manage.py shell` in ONE Django process: migrating, collecting the admin's static files,
# creating the admin user and seeding the demo would otherwise cost four Django start-ups, which is most of a
# second `up`'s wall time on a small machine. Parameters come from the environment, never from string formatting.
_SETUP_SCRIPT = """
import os
from django.contrib.auth import get_user_model
from django.core.management import call_command
call_command("migrate", interactive=False)
call_command("collectstatic", interactive=False, verbosity=0)
User = get_user_model()
name = os.environ["FJORDGATE_ADMIN_USER"]
defaults = {"is_staff": True, "is_superuser": True, User.EMAIL_FIELD: name + "@localhost"}
user, created = User.objects.get_or_create(**{User.USERNAME_FIELD: name}, defaults=defaults)
if created:
    user.set_password(os.environ["FJORDGATE_ADMIN_PASSWORD"])
    user.save()
print("admin user " + ("created" if created else "already exists"))
if os.environ.get("FJORDGATE_SEED_NAMESPACE"):
    call_command("seed_demo", "--namespace", os.environ["FJORDGATE_SEED_NAMESPACE"],
                 "--upstream-url", os.environ["FJORDGATE_SEED_UPSTREAM_URL"],
                 "--api-key", os.environ["FJORDGATE_SEED_API_KEY"], "--member", name)
"""


@dataclass(frozen=True)
class UpConfig:
    state: StateDir
    edges: int
    demo: bool
    namespace: str
    admin_user: str
    web_port: int
    bridge_health_port: int
    first_edge_port: int
    mock_port: int
    postgres_port: int
    nats_port: int
    redis_port: int
    database_url: str | None
    nats_url: str | None
    redis_url: str | None
    timeout: float
    stop_timeout: float


def _config(edges: int, demo: bool) -> UpConfig:
    with exit_on_config_error():
        return UpConfig(
            state=StateDir(state_dir_from_env()),
            edges=edges,
            demo=demo,
            namespace=env_str("FJORDGATE_DEMO_NAMESPACE", "demo") or "demo",
            admin_user=env_str("FJORDGATE_ADMIN_USER", "admin") or "admin",
            web_port=env_int("FJORDGATE_WEB_PORT", 8000, minimum=1, maximum=65535),
            bridge_health_port=env_int("BRIDGE_HEALTH_PORT", 8010, minimum=1, maximum=65535),
            first_edge_port=env_int("EDGE_PORT", 8080, minimum=1, maximum=65535 - edges),
            mock_port=env_int("FJORDGATE_MOCK_LLM_PORT", 8070, minimum=1, maximum=65535),
            postgres_port=env_int("FJORDGATE_POSTGRES_PORT", 15432, minimum=1, maximum=65535),
            nats_port=env_int("FJORDGATE_NATS_PORT", 14222, minimum=1, maximum=65535),
            redis_port=env_int("FJORDGATE_REDIS_PORT", 16379, minimum=1, maximum=65535),
            database_url=env_url("DATABASE_URL", DATABASE_SCHEMES),
            nats_url=env_url("NATS_URL", NATS_SCHEMES),
            redis_url=env_url("REDIS_URL", REDIS_SCHEMES),
            timeout=env_float("FJORDGATE_UP_TIMEOUT", 120.0, minimum=1.0),
            stop_timeout=env_float("FJORDGATE_STOP_TIMEOUT", 10.0, minimum=0.1),
        )


def _check_ports(config: UpConfig) -> None:
    wanted = [
        ("FJORDGATE_WEB_PORT", config.web_port),
        ("BRIDGE_HEALTH_PORT", config.bridge_health_port),
        ("FJORDGATE_MOCK_LLM_PORT", config.mock_port),
    ]
    wanted += [(f"EDGE_PORT (+{i})" if i else "EDGE_PORT", config.first_edge_port + i) for i in range(config.edges)]
    if config.database_url is None:
        wanted.append(("FJORDGATE_POSTGRES_PORT", config.postgres_port))
    if config.nats_url is None:
        wanted.append(("FJORDGATE_NATS_PORT", config.nats_port))
    if config.redis_url is None:
        wanted.append(("FJORDGATE_REDIS_PORT", config.redis_port))
    seen: dict[int, str] = {}
    for variable, port in wanted:
        if port in seen:
            fail(f"{variable} and {seen[port]} both use port {port}; give each process its own port")
        seen[port] = variable
        if not port_is_free(port):
            fail(
                f"port {port} ({variable}) is already in use on 127.0.0.1; stop what listens there or set "
                f"{variable.split()[0]} to a free port"
            )


def _probe_external(variable: str, url: str, probe: Callable[[str], None]) -> None:
    try:
        probe(url)
    except Unreachable as exc:
        fail(f"configuration error: {variable}: {exc}")


_EDGE_KEEPS = ("FJORDGATE_EDGE_SECRET", "FJORDGATE_PLUGIN_", "FJORDGATE_STATE_DIR", "FJORDGATE_MOCK_LLM_")
_CONTROL_PLANE_PREFIXES = ("DATABASE_", "REDIS_", "DJANGO_", "CELERY_", "FJORDGATE_")


def _control_plane_only(name: str) -> bool:
    """Variables only the control plane's processes may see (an edge or the mock LLM gets none of them)."""
    return name.startswith(_CONTROL_PLANE_PREFIXES) and not name.startswith(_EDGE_KEEPS)


class Stack:
    """The running stack: which processes exist, in which tier, and the URLs to print."""

    def __init__(self, config: UpConfig, secrets: UpSecrets, supervisor: Supervisor):
        self.config = config
        self.secrets = secrets
        self.sup = supervisor
        self.servers: list[ManagedProcess] = []
        self.apps: list[ManagedProcess] = []
        self.database_url = config.database_url
        self.nats_url = config.nats_url
        self.redis_url = config.redis_url
        self.admin_created = False
        self.edges_without_config: list[str] = []

    # --- servers ----------------------------------------------------------------------------------------------

    def start_servers(self) -> None:
        state = self.config.state
        plans: list[ServerPlan] = []
        try:
            if self.database_url is None:
                plans.append(postgres_plan(state.sub("postgres"), self.config.postgres_port))
            if self.nats_url is None:
                plans.append(
                    nats_plan(
                        state.sub("nats"),
                        self.config.nats_port,
                        password=self.secrets.nats_password,
                        edges=self.edge_nats_users(),
                    )
                )
            if self.redis_url is None:
                plans.append(
                    redis_plan(state.sub("redis"), self.config.redis_port, password=self.secrets.redis_password)
                )
        except ServerStartError as exc:
            raise StartupFailed(str(exc)) from None
        started = [
            (plan, self.sup.start(plan.name, plan.argv, stop_signal=plan.stop_signal, user=plan.user)) for plan in plans
        ]
        self.servers.extend(proc for _plan, proc in started)
        for plan, proc in started:
            self.sup.wait_ready(proc, plan.check, self.config.timeout, "accepting connections")
            plan.after_ready()
            if plan.name == "postgres":
                self.database_url = plan.url
            elif plan.name == "nats":
                self.nats_url = plan.url
            else:
                self.redis_url = plan.url
            self.sup.say(f"{plan.name} ready at {redact_url(plan.url)}")

    # --- app processes ----------------------------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.config.nats_url is None:  # our embedded NATS: its credentials are in the URL
            for name in ("NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CREDS"):
                env.pop(name, None)
        env.update(
            {
                "DATABASE_URL": self.database_url or "",
                "NATS_URL": self.nats_url or "",
                "REDIS_URL": self.redis_url or "",
                "DJANGO_SECRET_KEY": self.secrets.django_secret_key,
                "FJORDGATE_SECRET_KEY": self.secrets.secret_key,
                "FJORDGATE_EDGE_SECRET": self.secrets.edge_secret,
                "FJORDGATE_STATE_DIR": str(self.config.state.path),
                "FJORDGATE_WEB_PORT": str(self.config.web_port),
                "BRIDGE_HEALTH_PORT": str(self.config.bridge_health_port),
                "BRIDGE_HEALTH_HOST": "127.0.0.1",  # a local stack stays local, like the web process
                "FJORDGATE_MOCK_LLM_PORT": str(self.config.mock_port),
                "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _fjordgate(
        self, name: str, subcommand: list[str], *, env: dict[str, str] | None = None, ready_log: str | None = None
    ) -> ManagedProcess:
        # --no-preflight: the launcher has just started or probed every server these children use.
        command, *rest = subcommand
        flags = [] if command == "mock-llm" else ["--no-preflight"]
        argv = [sys.executable, "-m", "fjordgate", command, *flags, *rest]
        proc = self.sup.start(name, argv, env=env or self.child_env(), ready_log=ready_log)
        self.apps.append(proc)
        return proc

    def edge_port(self, index: int) -> int:
        return self.config.first_edge_port + index

    def edge_nats_users(self) -> list[NatsEdgeUser]:
        """One NATS user per edge of the embedded server, confined like the edges of deploy/nats/nats.conf."""
        return [
            NatsEdgeUser(edge_id, self.config.namespace, edge_nats_password(self.secrets.nats_password, edge_id))
            for edge_id in (f"edge-{index + 1}" for index in range(self.config.edges))
        ]

    def edge_nats_env(self, edge_id: str) -> dict[str, str]:
        """An edge of the embedded NATS connects as itself: its own user, and no control-plane credentials."""
        if self.config.nats_url is not None:  # the operator's NATS: the operator's NATS_* variables
            return {}
        return {
            "NATS_URL": f"nats://127.0.0.1:{self.config.nats_port}",
            "NATS_USER": edge_id,
            "NATS_PASSWORD": edge_nats_password(self.secrets.nats_password, edge_id),
        }

    def edge_env(self, index: int) -> dict[str, str]:
        """An edge's environment: its own settings and NATS user, none of the control plane's secrets.

        An edge runs close to clients, often on other hosts: it must not hold what would open the database or
        decrypt vendor keys at rest (DATABASE_URL, REDIS_URL, the Django and Fjordgate secret keys, OIDC and
        e-mail credentials). It keeps FJORDGATE_EDGE_SECRET (vendor keys in transit) and the plugin settings.
        """
        edge_id = f"edge-{index + 1}"
        env = {name: value for name, value in self.child_env().items() if not _control_plane_only(name)}
        env.update(self.edge_nats_env(edge_id))
        env.update(
            {
                "EDGE_NAMESPACE": self.config.namespace,
                "EDGE_ID": edge_id,
                "EDGE_HOST": "127.0.0.1",
                "EDGE_PORT": str(self.edge_port(index)),
                "EDGE_STATE_DIR": str(self.config.state.sub("edges", edge_id)),
            }
        )
        env.pop("EDGE_SNAPSHOT_FILE", None)
        env.setdefault("EDGE_WORKERS", "1")  # several edges on one machine already: one process each unless asked
        return env

    def start_mock_and_edges(self) -> list[tuple[ManagedProcess, str]]:
        mock_env = {name: value for name, value in self.child_env().items() if not _control_plane_only(name)}
        mock = self._fjordgate("mock-llm", ["mock-llm"], env=mock_env)
        waits = [(mock, f"http://127.0.0.1:{self.config.mock_port}/health")]
        for index in range(self.config.edges):
            proc = self._fjordgate(f"edge-{index + 1}", ["edge"], env=self.edge_env(index))
            waits.append((proc, f"http://127.0.0.1:{self.edge_port(index)}/health"))
        return waits

    def run_step(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        proc = self.sup.start(name, argv, env=env, is_step=True)
        self.apps.append(proc)
        return proc

    def finish_step(self, proc: ManagedProcess) -> None:
        code = self.sup.wait_exit(proc, self.config.timeout)
        if code != 0:
            tail = "\n".join(f"    {line}" for line in proc.tail()) or "    (no output)"
            raise StartupFailed(f"step `{proc.name}` failed with exit code {code}:\n{tail}")

    def set_up_database(self) -> None:
        """Migrate, collect static files, create the admin (once) and seed the demo (idempotent)."""
        env = dict(
            self.child_env(),
            FJORDGATE_ADMIN_USER=self.config.admin_user,
            FJORDGATE_ADMIN_PASSWORD=self.secrets.admin_password,
        )
        if self.config.demo:
            env.update(
                FJORDGATE_SEED_NAMESPACE=self.config.namespace,
                FJORDGATE_SEED_UPSTREAM_URL=f"http://127.0.0.1:{self.config.mock_port}/v1",
                FJORDGATE_SEED_API_KEY=self.secrets.demo_api_key,
            )
        step = self.run_step("setup", django_command("shell", "--no-imports", "-c", _SETUP_SCRIPT), env)
        self.finish_step(step)
        self.admin_created = any(line.strip() == "admin user created" for line in step.lines)

    def start_control_plane(self) -> list[tuple[ManagedProcess, str | None]]:
        web = self._fjordgate("web", ["web", "--port", str(self.config.web_port)])
        bridge = self._fjordgate("bridge", ["bridge"])
        # One local worker has no neighbours to sync with: skipping mingle/gossip saves a second of start-up.
        worker = self._fjordgate(
            "worker", ["worker", "--", "--without-mingle", "--without-gossip"], ready_log=CELERY_WORKER_READY
        )
        beat = self._fjordgate("beat", ["beat"], ready_log=CELERY_BEAT_READY)
        return [
            (web, f"http://127.0.0.1:{self.config.web_port}/health"),
            (bridge, f"http://127.0.0.1:{self.config.bridge_health_port}/health"),
            (worker, None),
            (beat, None),
        ]

    def wait_healthy(self, waits: list[tuple[ManagedProcess, str | None]]) -> None:
        for proc, url in waits:
            check = (lambda u=url: check_http(u)) if url is not None else None
            self.sup.wait_ready(proc, check, self.config.timeout, f"GET {url}" if url else "its ready log line")
            self.sup.say(f"{proc.name} healthy")

    def wait_edges_configured(self, timeout: float) -> None:
        """Edges are healthy once they listen; they serve traffic once the bridge delivered their config."""
        pending = {f"edge-{i + 1}": f"http://127.0.0.1:{self.edge_port(i)}/ready" for i in range(self.config.edges)}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline and not self.sup.stop_requested:
            for edge_id, url in list(pending.items()):
                try:
                    check_http(url, timeout=1.0)
                    del pending[edge_id]
                    self.sup.say(f"{edge_id} has its configuration")
                except Unreachable:
                    pass
            time.sleep(0.2)
        self.edges_without_config = sorted(pending)

    # --- the banner -------------------------------------------------------------------------------------------

    def banner(self, seconds: float) -> str:
        c = self.config
        web = f"http://127.0.0.1:{c.web_port}"
        if self.admin_created:
            password = f"{self.secrets.admin_password}   (shown once; also kept in {c.state.secrets_file})"
        elif env_str("FJORDGATE_ADMIN_PASSWORD"):
            password = "from FJORDGATE_ADMIN_PASSWORD"
        else:
            password = f"as printed on first start (kept in {c.state.secrets_file})"
        lines = [
            "",
            f"Fjordgate is up ({seconds:.1f} s). State: {c.state.path} (delete it to start from scratch).",
            "",
            f"  Admin     {web}/admin/",
            f"            user {c.admin_user}, password {password}",
            f"  Portal    {web}/portal/   (for users: catalogue, app requests, keys, usage)",
            f"  Chat      {web}/portal/chat/"
            + (f"   ({c.admin_user} is in 'Demo users', whose catalogue offers the mock LLM)" if c.demo else ""),
            f"  API docs  {web}/api/v1/docs/",
        ]
        for i in range(c.edges):
            lines.append(f"  Edge      http://127.0.0.1:{self.edge_port(i)}  (edge-{i + 1}, namespace {c.namespace})")
        lines.append(f"  Mock LLM  http://127.0.0.1:{c.mock_port}/v1")
        if self.edges_without_config:
            lines += [
                "",
                f"  Note: {', '.join(self.edges_without_config)} answer /health but not /ready yet: they "
                "serve requests once the bridge has delivered their configuration.",
            ]
        if c.demo and c.edges:
            base = f"http://127.0.0.1:{self.edge_port(0)}/v1"
            key = self.secrets.demo_api_key
            lines += [
                "",
                "Try it with the OpenAI SDK (pip install openai):",
                "",
                "  python - <<'EOF'",
                "  from openai import OpenAI",
                f'  client = OpenAI(base_url="{base}", api_key="{key}")',
                '  reply = client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", '
                '"content": "Hello"}])',
                "  print(reply.choices[0].message.content)",
                "  EOF",
                "",
                "or with curl:",
                "",
                f"  curl {base}/chat/completions -H 'Authorization: Bearer {key}' \\",
                "    -H 'Content-Type: application/json' \\",
                '    -d \'{"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]}\'',
            ]
        lines += ["", "Press Ctrl-C to stop everything.", ""]
        return "\n".join(lines)

    def stop(self) -> None:
        self.sup.stop_all([list(reversed(self.apps)), list(reversed(self.servers))])


def run_up(*, edges: int = 1, demo: bool = True) -> int:
    started = time.monotonic()
    config = _config(edges, demo)
    config.state.lock()
    secrets = config.state.load_secrets()
    _check_ports(config)
    if config.database_url:
        _probe_external("DATABASE_URL", config.database_url, check_postgres)
    if config.nats_url:
        _probe_external(
            "NATS_URL",
            config.nats_url,
            lambda url: check_nats(
                url, user=env_str("NATS_USER"), password=env_str("NATS_PASSWORD"), token=env_str("NATS_TOKEN")
            ),
        )
    if config.redis_url:
        _probe_external("REDIS_URL", config.redis_url, check_redis)

    sup = Supervisor(stop_timeout=config.stop_timeout)
    stack = Stack(config, secrets, sup)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if sup.stop_requested:  # a second Ctrl-C: the operator does not want to wait for graceful shutdown
            sup.kill_all_now()
            return
        sup.say(f"{signal.Signals(signum).name} received, stopping")
        sup.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        sup.say(f"starting in {config.state.path}")
        stack.start_servers()
        early = stack.start_mock_and_edges()
        stack.set_up_database()
        late = stack.start_control_plane()
        stack.wait_healthy(early + late)
        if config.demo:
            stack.wait_edges_configured(timeout=min(15.0, config.timeout))
        sup.print_plain(stack.banner(time.monotonic() - started))
        dead = sup.watch()
        if dead is not None:
            sup.say(sup.death_report(dead) + "\nstopping the rest of the stack")
            code = 1
    except StartupFailed as exc:
        sup.say(f"start-up failed: {exc}")
        code = 1
    except StopRequested:
        code = 0
    finally:
        sup.say("stopping")
        stack.stop()
        sup.say("stopped" if code == 0 else "stopped after a failure")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
