"""A small process supervisor for `fjordgate up`: start children, interleave their logs, stop them in order.

What it guarantees, and why each matters for a one-command stack:
- Every child runs in its own process group, so the terminal's Ctrl-C reaches only the launcher, which then
  stops children in reverse start order (edges before the bridge, the bridge before NATS, PostgreSQL last), and
  signals the whole group, so a Celery pool or uvicorn worker (grandchildren) never outlives its parent.
- Each child gets a parent-death signal (Linux `PR_SET_PDEATHSIG`): if the launcher itself is killed with
  SIGKILL, the children still go down instead of holding ports and data directories.
- Output is read line by line and printed with a coloured fixed-width prefix; the last lines are kept so a
  child that dies is reported with its name, exit code and what it said last.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from .embedded import as_user
from .probes import Unreachable

__all__ = ["ManagedProcess", "StartupFailed", "Supervisor", "StopRequested"]

_COLOURS = ["36", "33", "32", "35", "34", "91", "92", "93", "94", "95", "96", "31"]
PREFIX_WIDTH = 10
_PR_SET_PDEATHSIG = 1

_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (AttributeError, OSError):  # not Linux: no parent-death signal, process groups still apply
    _prctl = None


class StartupFailed(RuntimeError):
    """A child died or did not become ready during start-up; the message is the report to print."""


class StopRequested(RuntimeError):
    """SIGINT/SIGTERM arrived while the launcher was waiting for something."""


@dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    stop_signal: int
    popen: subprocess.Popen[bytes]
    colour: str
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    pump: threading.Thread | None = None
    ready_pattern: re.Pattern[str] | None = None
    log_ready: threading.Event = field(default_factory=threading.Event)
    is_step: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, count: int = 15) -> list[str]:
        return list(self.lines)[-count:]

    def join_pump(self, timeout: float) -> None:
        """Wait for the log pump to print what the child said last (it ends at the child's EOF)."""
        if self.pump is not None:
            self.pump.join(timeout)


class Supervisor:
    def __init__(self, out: TextIO | None = None, *, colour: bool | None = None, stop_timeout: float = 20.0):
        self.out = out or sys.stdout
        if colour is None:
            colour = self.out.isatty() and "NO_COLOR" not in os.environ
        self.colour = colour
        self.stop_timeout = stop_timeout
        self.processes: list[ManagedProcess] = []
        self._write_lock = threading.Lock()
        self._stop = threading.Event()

    # --- output -----------------------------------------------------------------------------------------------

    def _prefix(self, name: str, colour: str) -> str:
        label = f"{name[:PREFIX_WIDTH]:<{PREFIX_WIDTH}} |"
        return f"\033[{colour}m{label}\033[0m " if self.colour else f"{label} "

    def say(self, text: str, *, name: str = "fjordgate", colour: str = "1") -> None:
        """Print launcher messages with the same prefix scheme as the children's output."""
        with self._write_lock:
            for line in text.splitlines() or [""]:
                self.out.write(self._prefix(name, colour) + line + "\n")
            self.out.flush()

    def print_plain(self, text: str) -> None:
        with self._write_lock:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()

    def _pump(self, proc: ManagedProcess) -> None:
        stream = proc.popen.stdout
        assert stream is not None
        prefix = self._prefix(proc.name, proc.colour)
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            proc.lines.append(line)
            if proc.ready_pattern is not None and not proc.log_ready.is_set() and proc.ready_pattern.search(line):
                proc.log_ready.set()
            with self._write_lock:
                self.out.write(prefix + line + "\n")
                self.out.flush()
        stream.close()

    # --- starting ---------------------------------------------------------------------------------------------

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
        ready_log: str | None = None,
        is_step: bool = False,
    ) -> ManagedProcess:
        """Start `argv` in a new process group with its output piped to the interleaved log."""
        death_signal = int(stop_signal)

        def set_parent_death_signal() -> None:  # runs in the child between fork and exec
            if _prctl is not None:
                _prctl(_PR_SET_PDEATHSIG, death_signal)

        popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=set_parent_death_signal,
            **as_user(user),
        )
        proc = ManagedProcess(
            name=name,
            argv=argv,
            stop_signal=stop_signal,
            popen=popen,
            colour=_COLOURS[len(self.processes) % len(_COLOURS)],
            ready_pattern=re.compile(ready_log) if ready_log else None,
            is_step=is_step,
        )
        proc.pump = threading.Thread(target=self._pump, args=(proc,), name=f"log-{name}", daemon=True)
        proc.pump.start()
        self.processes.append(proc)
        return proc

    # --- waiting ----------------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def death_report(self, proc: ManagedProcess) -> str:
        code = proc.popen.returncode
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit code {code}"
        tail = "\n".join(f"    {line}" for line in proc.tail()) or "    (no output)"
        return f"{proc.name} (pid {proc.pid}) stopped unexpectedly, {how}. Its last output:\n{tail}"

    def wait_ready(self, proc: ManagedProcess, check: Callable[[], None] | None, timeout: float, what: str) -> None:
        """Poll `check` (raises `Unreachable` until ready) or wait for the ready log line; fail if `proc` dies."""
        deadline = time.monotonic() + timeout
        last_reason = "no answer yet"
        while True:
            if self._stop.is_set():
                raise StopRequested()
            if check is not None:
                try:
                    check()
                    return
                except Unreachable as exc:
                    last_reason = str(exc)
            elif proc.log_ready.is_set():
                return
            if not proc.alive():
                proc.join_pump(2)
                raise StartupFailed(self.death_report(proc))
            if time.monotonic() > deadline:
                raise StartupFailed(f"{proc.name} did not become ready within {timeout:.0f}s ({what}): {last_reason}")
            time.sleep(0.1)

    def wait_exit(self, proc: ManagedProcess, timeout: float) -> int:
        """Wait for a one-shot step (migrate, seed) to finish; its output has been printed as it ran."""
        deadline = time.monotonic() + timeout
        while proc.alive():
            if self._stop.is_set():
                raise StopRequested()
            if time.monotonic() > deadline:
                raise StartupFailed(f"{proc.name} did not finish within {timeout:.0f}s")
            time.sleep(0.05)
        proc.join_pump(5)
        return proc.popen.returncode

    def watch(self) -> ManagedProcess | None:
        """Block until a stop is requested (returns None) or a long-running child exits (returns it)."""
        while not self._stop.wait(0.2):
            for proc in self.processes:
                if not proc.is_step and not proc.alive():
                    proc.join_pump(2)
                    return proc
        return None

    # --- stopping ---------------------------------------------------------------------------------------------

    def stop_all(self, groups: Iterable[Iterable[ManagedProcess]] | None = None) -> None:
        """Stop children tier by tier, in reverse start order; SIGKILL any group still alive after the timeout.

        Within a tier the signals go out in reverse order and the waits overlap, so stopping six app
        processes costs the slowest one's shutdown, not the sum.
        """
        tiers = [list(t) for t in groups] if groups is not None else [list(reversed(self.processes))]
        for tier in tiers:
            for proc in tier:
                if proc.alive():
                    _signal_group(proc.pid, proc.stop_signal)
            deadline = time.monotonic() + self.stop_timeout
            for proc in tier:
                remaining = max(0.0, deadline - time.monotonic())
                try:
                    proc.popen.wait(remaining)
                except subprocess.TimeoutExpired:
                    self.say(f"{proc.name} did not stop within {self.stop_timeout:.0f}s; killing it")
            for proc in tier:
                # Grandchildren that outlived their leader (or a leader that ignored the signal) die here.
                _signal_group(proc.pid, signal.SIGKILL)
                if proc.alive():
                    proc.popen.wait(5)
                proc.join_pump(2)

    def kill_all_now(self) -> None:
        for proc in reversed(self.processes):
            _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
