"""Copying folders up and files down over an open SFTP session (the connection handling is the caller's)."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path

import paramiko

DEFAULT_UPLOAD_EXCLUDES = (".git", "__pycache__", "*.pyc", ".venv", ".pytest_cache", ".mypy_cache",
                           ".ruff_cache", ".tox", "node_modules")


def upload_tree(sftp: paramiko.SFTPClient, local: Path, remote: str,
                exclude: Sequence[str] = DEFAULT_UPLOAD_EXCLUDES) -> int:
    """Copy ``local`` into ``remote`` (made if missing), keeping file modes; returns files sent.

    Names matching an ``exclude`` pattern (files or folders, at any depth) are skipped. Only regular
    files and folders are copied. A symlink is never followed: one that points inside ``local`` is
    made again as a link on the host; one that points outside is refused, since following it would
    upload a worker's file (a profile, a key) where the change's own tests can read it.
    """
    sent = 0
    root = local.resolve()
    make_dirs(sftp, remote)
    for folder, dirs, files in os.walk(local):
        relative = Path(folder).relative_to(local).as_posix()
        target = remote if relative == "." else posixpath.join(remote, relative)
        for name in sorted(dirs):
            if not _excluded(name, exclude) and (Path(folder) / name).is_symlink():
                _put_link(sftp, Path(folder) / name, posixpath.join(target, name), root)
        dirs[:] = sorted(d for d in dirs if not _excluded(d, exclude) and not (Path(folder) / d).is_symlink())
        for name in dirs:
            make_dirs(sftp, posixpath.join(target, name))
        for name in sorted(files):
            path = Path(folder) / name
            if _excluded(name, exclude):
                continue
            if path.is_symlink():
                _put_link(sftp, path, posixpath.join(target, name), root)
            elif path.is_file():
                put_file(sftp, path, posixpath.join(target, name), make_parent=False)
            else:
                continue  # a socket or FIFO: nothing a test run needs, and not a file to copy
            sent += 1
    return sent


def _put_link(sftp: paramiko.SFTPClient, link: Path, remote_path: str, root: Path) -> None:
    from testpilot.errors import ConfigError

    pointer = os.readlink(link)
    resolved = (link.parent / pointer).resolve()
    if os.path.isabs(pointer) or not resolved.is_relative_to(root):
        raise ConfigError(f"{link} is a symlink to {pointer}, outside the uploaded folder {root}",
                          field="apps", hint="symlinks are never followed into test machines; commit the "
                                             "file itself, or point the link inside the app folder")
    try:
        sftp.remove(remote_path)
    except OSError:
        pass
    sftp.symlink(pointer, remote_path)


def put_file(sftp: paramiko.SFTPClient, local: Path, remote_path: str, *, make_parent: bool = True) -> None:
    """Copy one file up, keeping its mode; its folder is made first unless the caller already did."""
    if make_parent:
        make_dirs(sftp, posixpath.dirname(remote_path))
    sftp.put(str(local), remote_path)
    sftp.chmod(remote_path, stat.S_IMODE(local.stat().st_mode))


def fetch_file(sftp: paramiko.SFTPClient, remote_path: str, local_path: Path) -> bool:
    """Download one file; False (and nothing written) when it does not exist."""
    try:
        sftp.stat(remote_path)
    except FileNotFoundError:
        return False
    local_path.parent.mkdir(parents=True, exist_ok=True)
    sftp.get(remote_path, str(local_path))
    return True


def make_dirs(sftp: paramiko.SFTPClient, path: str) -> None:
    """``mkdir -p`` over SFTP."""
    current = "/" if path.startswith("/") else ""
    for part in [p for p in path.split("/") if p]:
        current = posixpath.join(current, part) if current else part
        try:
            sftp.stat(current)
        except FileNotFoundError:
            sftp.mkdir(current)


def _excluded(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch(name, pattern) for pattern in patterns)
