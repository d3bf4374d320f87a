"""Start real Fjordgate processes from tests, wait until they are ready, and stop them with no orphans.

Each process runs in its own session (process group), with stdout+stderr captured to a file, so a failing test
shows what the process said, and `stop()` signals the whole group: a uvicorn or Celery child never survives
its test. Use the `processes` fixture (tests/conftest.py) to have every started process stopped at teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessHandle", "ROOT", "fjordgate_argv", "find_processes", "start_process", "wait_for_http"]

ROOT = Path(__file__).resolve().parents[2]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ProcessFailed(AssertionError):
    """A process exited or never became ready; the message ends with its captured output."""


@dataclass
class ProcessHandle:
    name: str
    argv: list[str]
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def describe(self) -> str:
        return f"{self.name} (pid {self.pid}, exit {self.popen.poll()})\n--- output ---\n{self.tail()}"

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        """Block until `text` appears in the output; fail with the output if the process exits first."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if not self.alive():
                raise ProcessFailed(f"exited before printing {text!r}: {self.describe()}")
            if time.monotonic() > deadline:
                raise ProcessFailed(f"no {text!r} within {timeout:.0f}s: {self.describe()}")
            time.sleep(0.1)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ProcessFailed(f"did not exit within {timeout:.0f}s: {self.describe()}") from None

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process only (as a terminal or orchestrator would)."""
        if self.alive():
            self.popen.send_signal(sig)

    def terminate(self) -> None:
        """Send SIGTERM to the process group without waiting (then `stop(sig=None)` waits)."""
        if self.alive():
            _killpg(self.pid, signal.SIGTERM)

    def stop(self, timeout: float = 20.0, sig: int | None = signal.SIGTERM) -> int | None:
        """Signal the process group, wait, then SIGKILL whatever is left of the group; returns the exit code.
        `sig=None`: the group was signalled already (`terminate`), only wait."""
        if self.alive():
            if sig is not None:
                _killpg(self.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _killpg(self.pid, signal.SIGKILL)
        if self.alive():
            self.popen.wait(5)
        return self.popen.returncode

    def discard(self, *, terminated: bool = False) -> None:
        """Stop the process and delete its captured output (what fixtures do at teardown). `terminated`: it was
        sent SIGTERM already (`terminate`)."""
        self.stop(sig=None if terminated else signal.SIGTERM)
        self.log_path.unlink(missing_ok=True)


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for_http(url: str, timeout: float = 30.0, handle: ProcessHandle | None = None) -> None:
    """Poll `url` until it answers 2xx; fail early (with the output) if `handle`'s process exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with _NO_PROXY.open(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
                last = f"status {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if handle is not None and not handle.alive():
            raise ProcessFailed(f"exited before {url} answered: {handle.describe()}")
        if time.monotonic() > deadline:
            detail = f": {handle.describe()}" if handle is not None else ""
            raise ProcessFailed(f"{url} not ready within {timeout:.0f}s ({last}){detail}")
        time.sleep(0.1)


def start_process(
    argv: Sequence[str],
    env: Mapping[str, str | None] | None = None,
    ready_url: str | None = None,
    timeout: float = 30.0,
    *,
    name: str | None = None,
    cwd: Path | str = ROOT,
) -> ProcessHandle:
    """Start `argv` (environment = os.environ updated with `env`; a None value removes a variable).

    When `ready_url` is given, returns once it answers 2xx; if the process dies or the timeout passes first,
    the process group is stopped and the failure carries its output.
    """
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    log_fd, log_name = tempfile.mkstemp(prefix=f"fj-{name or Path(argv[0]).name}-", suffix=".log")
    with os.fdopen(log_fd, "wb") as log:
        popen = subprocess.Popen(
            list(argv),
            env=full_env,
            cwd=str(cwd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = ProcessHandle(name or Path(argv[0]).name, list(argv), popen, Path(log_name))
    if ready_url is not None:
        try:
            wait_for_http(ready_url, timeout, handle)
        except ProcessFailed:
            handle.discard()  # the exception already carries the output
            raise
    return handle


def fjordgate_argv(*args: str) -> list[str]:
    """The `fjordgate` command as this interpreter runs it (works without the console script installed)."""
    return [sys.executable, "-m", "fjordgate", *args]


def find_processes(marker: tuple[str, str] | None = None, cwd_under: Path | None = None) -> list[int]:
    """PIDs of live processes with env var `marker` (name, value) or a working directory under `cwd_under`.

    How tests find orphans without psutil. Every descendant inherits its parent's environment, so a marker set
    on a launcher finds children and grandchildren even after they were re-parented to init. Servers that
    overwrite their environ block for their process title (redis-server) are found by their working
    directory, which they chdir to inside their data directory.
    """
    needle = f"{marker[0]}={marker[1]}".encode() if marker else None
    root = str(Path(cwd_under).resolve()) if cwd_under is not None else None
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
            matched = False
            if needle is not None:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    matched = needle in fh.read().split(b"\0")
            if not matched and root is not None:
                cwd = os.readlink(f"/proc/{entry}/cwd")
                matched = cwd == root or cwd.startswith(root + os.sep)
        except OSError:
            continue
        if matched:
            found.append(int(entry))
    return found
