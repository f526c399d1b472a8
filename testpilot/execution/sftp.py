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

    Names matching an ``exclude`` pattern (files or folders, at any depth) are skipped.
    """
    sent = 0
    make_dirs(sftp, remote)
    for folder, dirs, files in os.walk(local):
        dirs[:] = sorted(d for d in dirs if not _excluded(d, exclude))
        relative = Path(folder).relative_to(local).as_posix()
        target = remote if relative == "." else posixpath.join(remote, relative)
        for name in dirs:
            make_dirs(sftp, posixpath.join(target, name))
        for name in sorted(files):
            if _excluded(name, exclude):
                continue
            put_file(sftp, Path(folder) / name, posixpath.join(target, name), make_parent=False)
            sent += 1
    return sent


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
