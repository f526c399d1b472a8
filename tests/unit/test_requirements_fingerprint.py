"""Which installs a warm snapshot may stand for: the fingerprint of the apps' requirements."""

from __future__ import annotations

from pathlib import Path

from testpilot.environments.staging import InstallSettings, requirements_fingerprint

UV = InstallSettings(uv="/usr/bin/uv")


def _key(folder: Path, text: str, install: InstallSettings = UV, **more: str) -> str:
    (folder / "requirements.txt").write_text(text)
    for name, content in more.items():
        (folder / f"{name}.txt").write_text(content)
    return requirements_fingerprint({"app": str(folder / "requirements.txt"), "other": None}, install)


def test_same_requirements_same_key_and_any_change_a_new_one(tmp_path: Path) -> None:
    first = _key(tmp_path, "pytest==9.2.0\nrequests  # for the client\n")
    assert len(first) == 16 and first == _key(tmp_path, "pytest==9.2.0\nrequests  # for the client\n")
    assert _key(tmp_path, "pytest==9.2.1\nrequests\n") != first
    assert _key(tmp_path, "pytest==9.2.0\nrequests\n", InstallSettings(uv="/usr/bin/uv", python="python3.12")) != first


def test_included_files_count_and_comments_do_not(tmp_path: Path) -> None:
    base = _key(tmp_path, "-r common.txt\n# pinned\n", common="pytest\n")
    assert base == _key(tmp_path, "-r common.txt\n# pinned below\n", common="pytest\n")
    assert base != _key(tmp_path, "-r common.txt\n", common="pytest\nhypothesis\n")
    assert _key(tmp_path, "-r missing-file.txt\n") == ""


def test_local_and_editable_requirements_are_never_warm(tmp_path: Path) -> None:
    for line in ("-e .", "--editable ./lib", ".", "./wheels/x.whl", "/opt/pkg", "pkg @ file:///srv/pkg",
                 "pkg @ ./pkg", "-f ./wheels", "--find-links=/srv/wheels"):
        assert _key(tmp_path, f"pytest\n{line}\n") == "", line
    assert _key(tmp_path, "pkg @ https://example.invalid/pkg-1.0.tar.gz\n") != ""


def test_only_a_provider_that_keeps_warm_snapshots_gets_a_key(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from testpilot.environments.base import AcquireRequest
    from testpilot.environments.config import EnvironmentConfig
    from testpilot.environments.staging import StagedProvider

    (tmp_path / "requirements.txt").write_text("pytest\n")
    request = AcquireRequest(pool="p", config=EnvironmentConfig(provider="proxmox"), run_id="r",
                             requirements={"app": str(tmp_path / "requirements.txt")})
    keys = {keeps: StagedProvider(SimpleNamespace(name="x", keeps_warm_snapshots=keeps),  # type: ignore[arg-type]
                                  install=UV).warm_key(request) for keeps in (True, False)}
    assert len(keys[True]) == 16 and keys[False] == ""
    assert StagedProvider(SimpleNamespace(name="ssh"), install=UV).warm_key(request) == ""  # type: ignore[arg-type]
