"""The local stack's state directory: server data, edge state and the secrets generated on first `up`.

Secrets are generated once and kept in `secrets.json` (mode 0600) so a second `fjordgate up` decrypts the
vendor keys stored by the first, logs in with the same admin password and serves the same demo key. A value
set in the environment always wins over the stored one.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from .env import env_str, fail

__all__ = ["StateDir", "UpSecrets", "state_dir_from_env"]


def state_dir_from_env() -> Path:
    return Path(env_str("FJORDGATE_STATE_DIR", ".fjordgate") or ".fjordgate").resolve()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@dataclass(frozen=True)
class UpSecrets:
    django_secret_key: str
    secret_key: str
    """FJORDGATE_SECRET_KEY: Fernet key(s) for vendor keys at rest."""
    edge_secret: str
    """FJORDGATE_EDGE_SECRET: Fernet key(s) for vendor keys inside snapshots."""
    admin_password: str
    demo_api_key: str
    nats_password: str
    redis_password: str


_GENERATORS: dict[str, Callable[[], str]] = {
    "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "FJORDGATE_SECRET_KEY": _fernet_key,
    "FJORDGATE_EDGE_SECRET": _fernet_key,
    "FJORDGATE_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
    "demo_api_key": lambda: "fj-demo-" + secrets.token_urlsafe(24),
    "nats_password": lambda: secrets.token_urlsafe(24),
    "redis_password": lambda: secrets.token_urlsafe(24),
}
_FROM_ENV = ("DJANGO_SECRET_KEY", "FJORDGATE_SECRET_KEY", "FJORDGATE_EDGE_SECRET", "FJORDGATE_ADMIN_PASSWORD")


class StateDir:
    """One directory holding everything `fjordgate up` keeps between runs, locked while a stack runs in it."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        self._lock_file: IO[str] | None = None

    @property
    def secrets_file(self) -> Path:
        return self.path / "secrets.json"

    def sub(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    def lock(self) -> None:
        """Refuse to run two stacks on the same data: the second would corrupt the first's servers."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / "up.lock", "a+")  # noqa: SIM115 - held for the launcher's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            fail(
                f"another `fjordgate up` (pid {holder}) is already using {self.path}; stop it first, "
                "or set FJORDGATE_STATE_DIR to run a second stack"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def load_secrets(self) -> UpSecrets:
        """The stack's secrets: the environment first, then the file, generating (and storing) what is missing."""
        stored: dict[str, str] = {}
        if self.secrets_file.exists():
            try:
                stored = json.loads(self.secrets_file.read_text())
            except (OSError, ValueError) as exc:
                fail(
                    f"cannot read {self.secrets_file} ({exc}); fix or delete it (the stack's data then needs "
                    "new secrets)"
                )
        changed = False
        for key, generate in _GENERATORS.items():
            if not stored.get(key):
                stored[key] = generate()
                changed = True
        if changed:
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = self.secrets_file.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            # Created 0600 from the first byte: the secrets are never readable by other local users.
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
                handle.write(json.dumps(stored, indent=2) + "\n")
            tmp.replace(self.secrets_file)
        values = dict(stored)
        for key in _FROM_ENV:
            values[key] = env_str(key) or stored[key]
        return UpSecrets(
            django_secret_key=values["DJANGO_SECRET_KEY"],
            secret_key=values["FJORDGATE_SECRET_KEY"],
            edge_secret=values["FJORDGATE_EDGE_SECRET"],
            admin_password=values["FJORDGATE_ADMIN_PASSWORD"],
            demo_api_key=values["demo_api_key"],
            nats_password=values["nats_password"],
            redis_password=values["redis_password"],
        )
