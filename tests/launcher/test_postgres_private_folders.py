"""Embedded PostgreSQL starts from a checkout and a state folder inside private (0700) directories, as `mktemp -d`
or `/root` make them, and leaves the permissions of those directories as they were.

Under root the server runs as an unprivileged account that cannot enter such directories; as any other user the
folders are the user's own and this simply works. The virtual environment is simulated by a copy of the
`pgserver` package inside a 0700 directory, found first on `sys.path`, as a venv under `/root` would be.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fjordgate.embedded import free_port, postgres_plan, run_server


def _modes(path: Path) -> dict[Path, int]:
    """The mode of `path` and of every directory above it."""
    return {p: stat.S_IMODE(p.stat().st_mode) for p in [path, *path.parents]}


@pytest.fixture
def private_root(monkeypatch) -> Iterator[Path]:
    """A 0700 folder holding a copy of the `pgserver` package (first on sys.path) and room for a state folder;
    the account's home is a fresh folder too, so the binaries are placed there in this test."""
    root = Path(tempfile.mkdtemp(prefix="fjordgate-private-"))
    home = Path(tempfile.gettempdir()) / f"fjordgate-pghome-{uuid.uuid4().hex[:8]}"
    site = root / "venv" / "site-packages"
    source = Path(importlib.util.find_spec("pgserver").submodule_search_locations[0])
    for folder in (source, source.parent / "pgserver.libs"):  # the package and its wheel's shared libraries
        if folder.is_dir():
            shutil.copytree(folder, site / folder.name, symlinks=True, copy_function=os.link)
    for folder in (root / "venv", site):
        folder.chmod(0o700)
    monkeypatch.delitem(sys.modules, "pgserver", raising=False)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("FJORDGATE_POSTGRES_HOME", str(home))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    yield root
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


def test_postgres_starts_from_private_folders_and_keeps_their_permissions(private_root: Path, capfd) -> None:
    assert Path(importlib.util.find_spec("pgserver").origin).is_relative_to(private_root)  # the private "venv"
    data_dir = private_root / "checkout" / ".fjordgate" / "postgres"
    data_dir.parent.mkdir(parents=True)
    data_dir.parent.chmod(0o700)
    before = _modes(data_dir.parent)

    with run_server(postgres_plan(data_dir, free_port()), private_root / "pg.log") as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('written')")
    with run_server(postgres_plan(data_dir, free_port()), private_root / "pg.log") as server:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT value FROM kept").fetchone() == ("written",)

    assert _modes(data_dir.parent) == before, "the permissions of the user's directories changed"
    if os.geteuid() == 0:
        said = [line for line in capfd.readouterr().err.splitlines() if "PostgreSQL runs as system user" in line]
        assert said and "pgserver" in said[0] and str(data_dir) in said[0]


def test_removing_the_state_folder_forgets_the_data(private_root: Path) -> None:
    """`make clean-state` deletes the state folder: the next start begins with an empty database."""
    data_dir = private_root / "state" / "postgres"
    data_dir.parent.mkdir()
    with run_server(postgres_plan(data_dir, free_port()), private_root / "pg.log") as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE forgotten (value text)")
    shutil.rmtree(private_root / "state")
    data_dir.parent.mkdir()
    with run_server(postgres_plan(data_dir, free_port()), private_root / "pg.log") as server:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT to_regclass('forgotten')").fetchone() == (None,)


_CREATE_ACCOUNT = """
import os, pwd, sys
import fjordgate.postgres_home as home_module
home_module.SERVICE_ACCOUNT = sys.argv[1]
account = home_module.account_for_postgres()
print(account.uid, os.stat(account.home).st_uid, pwd.getpwnam(sys.argv[1]).pw_uid)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the account is created only when running as root")
def test_processes_starting_at_once_create_one_account_and_give_it_its_home(tmp_path: Path) -> None:
    """Parallel test workers (or two checkouts) reach a machine without the account at once: each must end with the
    same account, owning its home. Without a lock, two `useradd`s raced: one process failed, another saw the home
    owned by a uid that was no longer the account's ("exists but is not a directory owned by root")."""
    import pwd
    import subprocess

    name = f"fjpg{uuid.uuid4().hex[:8]}"  # a fresh account, deleted below: the machine's own is left alone
    home = Path(tempfile.gettempdir()) / f"fjordgate-pghome-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "FJORDGATE_POSTGRES_HOME": str(home), "PYTHONPATH": os.getcwd()}
    try:
        for _ in range(3):  # the race was lost about two times in three with four processes
            shutil.rmtree(home, ignore_errors=True)
            subprocess.run(["userdel", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)
            started = [
                subprocess.Popen(
                    [sys.executable, "-c", _CREATE_ACCOUNT, name],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                for _ in range(4)
            ]
            results = [process.communicate(timeout=60) for process in started]
            uid = pwd.getpwnam(name).pw_uid
            for process, (out, err) in zip(started, results, strict=True):
                assert process.returncode == 0, err.decode()
                assert out.split() == [str(uid).encode()] * 3
            assert stat.S_IMODE(home.stat().st_mode) == 0o700
    finally:
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)
