"""Where embedded PostgreSQL's binaries and data live when we run as root, without touching anyone's folders.

PostgreSQL refuses to run as root, so under root the server runs as a system account (`pgserver`). That account
must reach the binaries and the data directory, and a checkout or state folder under a private (0700) directory,
such as `/root` or one made by `mktemp -d`, is out of its reach. Instead of widening the permissions of the
user's directories, we give the account a home of its own (FJORDGATE_POSTGRES_HOME, default
/var/lib/fjordgate-postgres, owned by the account, 0700):

- `pginstall-<content hash>/`: pgserver's binaries, hard-linked (or copied across file systems) on first use
  and reused by every checkout and virtual environment with the same build;
- `data/<hash of the requested path>/`: the data of a requested directory the account cannot reach; the
  requested path becomes a symbolic link to it, so removing the state folder (`make clean-state`) still
  forgets the data (the orphan is deleted on the next start);
- `scratch/`: throwaway directories for test servers (`scratch_dir`), deleted by whoever asked for them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Account", "account_for_postgres", "binaries_in_home", "data_dir_for", "scratch_dir"]

SERVICE_ACCOUNT = "pgserver"  # pgserver's own convention for the account
DEFAULT_HOME = Path("/var/lib/fjordgate-postgres")
HOME_VARIABLE = "FJORDGATE_POSTGRES_HOME"


class HomeError(RuntimeError):
    """The account's home cannot be used safely; the message says why and what to do."""


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


def account_for_postgres() -> Account | None:
    """The account PostgreSQL runs as, with its home ready; None when we are not root (it runs as us)."""
    if os.geteuid() != 0:
        return None
    # Several processes may get here at once (parallel test workers, two checkouts starting): without the lock,
    # two `useradd`s raced and the account ended with another uid than the one its home had just been given.
    home = Path(os.environ.get(HOME_VARIABLE) or DEFAULT_HOME).absolute()
    lock = os.open(home.parent / f".{home.name}.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entry = pwd.getpwnam(SERVICE_ACCOUNT)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_ACCOUNT],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(SERVICE_ACCOUNT)
        account = Account(SERVICE_ACCOUNT, entry.pw_uid, entry.pw_gid, home)
        _prepare_home(account)
    finally:
        os.close(lock)  # releases the lock
    return account


def _prepare_home(account: Account) -> None:
    home = account.home
    blocked = first_unreachable(home.parent, account)
    if blocked is not None:
        raise HomeError(
            f"{home} cannot be PostgreSQL's home: {blocked} is not traversable by the {account.name!r} account; "
            f"set {HOME_VARIABLE} to a folder whose parents others may traverse (e.g. under /var/lib or /tmp)"
        )
    try:
        home.mkdir(mode=0o700)
        os.chown(home, account.uid, account.gid)
    except FileExistsError:
        info = home.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (0, account.uid):
            raise HomeError(f"{home} exists but is not a directory owned by root or {account.name!r}") from None
        if info.st_uid != account.uid or stat.S_IMODE(info.st_mode) != 0o700:
            os.chown(home, account.uid, account.gid)  # ours: created by root before the account had it
            home.chmod(0o700)


def first_unreachable(path: Path, account: Account) -> Path | None:
    """The first directory on the way to `path` (itself included) that `account` may not traverse, or None."""
    current = Path("/")
    for part in path.resolve().parts[1:]:
        if not _traversable(current, account):
            return current
        current = current / part
        if not current.exists():
            return None  # what does not exist yet is created by us, for the account
    return current if not _traversable(current, account) else None


def _traversable(directory: Path, account: Account) -> bool:
    info = directory.stat()
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == account.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _content_key(trees: list[Path], server: Path) -> str:
    """A hash of the build: every file's path and size, plus the server binary's bytes."""
    digest = hashlib.sha256()
    for tree in trees:
        for path in sorted(tree.rglob("*")):
            if path.is_file() and not path.is_symlink():
                digest.update(f"{tree.name}/{path.relative_to(tree)}\0{path.stat().st_size}\n".encode())
    with open(server, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or hard links refused: a copy does as well
        shutil.copy2(source, target)


def binaries_in_home(package: Path, account: Account) -> tuple[Path, bool]:
    """The `pgserver` package's binaries placed in the account's home; returns (their bin folder, placed now).

    The wheel's binaries find their shared libraries at `$ORIGIN/../../../pgserver.libs` (auditwheel), so the
    layout `pgserver/pginstall` + `pgserver.libs` is kept. Built in a temporary folder and renamed into place,
    so concurrent starts (several checkouts, parallel test runs) never see a half-copied tree; the loser of the
    race throws its copy away.
    """
    trees = [package / "pginstall"] + [p for p in [package.parent / f"{package.name}.libs"] if p.is_dir()]
    target = account.home / f"pginstall-{_content_key(trees, package / 'pginstall' / 'bin' / 'postgres')}"
    bin_dir = target / package.name / "pginstall" / "bin"
    if (bin_dir / "postgres").exists():
        return bin_dir, False
    staging = Path(tempfile.mkdtemp(prefix=".pginstall-", dir=account.home))
    try:
        tree = staging / "tree"
        shutil.copytree(trees[0], tree / package.name / "pginstall", symlinks=True, copy_function=_link_or_copy)
        for extra in trees[1:]:
            shutil.copytree(extra, tree / extra.name, symlinks=True, copy_function=_link_or_copy)
        for folder in (tree, tree / package.name):
            folder.chmod(0o755)
        try:
            tree.rename(target)
        except OSError:
            if not (bin_dir / "postgres").exists():
                raise
            return bin_dir, False
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bin_dir, True


def data_dir_for(requested: Path, account: Account) -> tuple[Path, str]:
    """The data directory PostgreSQL uses for `requested`, owned by the account; returns (it, what was done).

    `requested` itself when the account can reach it; otherwise a directory in the account's home, with
    `requested` made a symbolic link to it.
    """
    requested = requested.absolute()
    parent = requested.parent
    parent.mkdir(parents=True, exist_ok=True)
    blocked = first_unreachable(parent, account)
    if blocked is None and not requested.is_symlink():
        requested.mkdir(exist_ok=True)
        os.chown(requested, account.uid, account.gid)
        requested.chmod(0o700)
        return requested, f"data in {requested}"
    kept = account.home / "data" / hashlib.sha256(str(requested).encode()).hexdigest()[:16]
    if requested.is_symlink():
        if Path(os.readlink(requested)) != kept:
            raise HomeError(f"{requested} is a symbolic link to somewhere else than {kept}; remove it")
    elif requested.exists():
        if any(requested.iterdir()):
            raise HomeError(
                f"{requested} holds files but {blocked} is not traversable by the {account.name!r} account; "
                f"move them to {kept} (owned by {account.name}) and replace {requested} by a link to it"
            )
        requested.rmdir()
    else:
        shutil.rmtree(kept, ignore_errors=True)  # an orphan: its link went with a deleted state folder
    (account.home / "data").mkdir(mode=0o700, exist_ok=True)
    os.chown(account.home / "data", account.uid, account.gid)
    kept.mkdir(mode=0o700, exist_ok=True)
    os.chown(kept, account.uid, account.gid)
    if not requested.is_symlink():
        requested.symlink_to(kept, target_is_directory=True)
    why = f"{blocked} is private to its owner" if blocked is not None else "kept there before"
    return kept, f"data in {kept} ({why}; {requested} links there)"


def scratch_dir(prefix: str) -> Path:
    """A fresh directory a throwaway PostgreSQL can use (test fixtures); the caller deletes it."""
    account = account_for_postgres()
    if account is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    parent = account.home / "scratch"
    parent.mkdir(mode=0o700, exist_ok=True)
    os.chown(parent, account.uid, account.gid)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chown(path, account.uid, account.gid)
    return path
