"""``cluster prepare``: the cache is reused; a missing Go or a failed build exits 2 with what went wrong."""

from __future__ import annotations

import os
import pathlib

import pytest

from sim.harness.cli import main
from sim.harness.targets.cluster import build


@pytest.fixture
def cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    root = tmp_path / "k8s"
    monkeypatch.setenv("PEERPODS_K8S_CACHE", str(root))
    return root


def _fake_go(tmp_path: pathlib.Path, body: str) -> pathlib.Path:
    script = tmp_path / "go"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def test_cache_is_keyed_by_version_and_modules(cache: pathlib.Path) -> None:
    directory = build.cache_dir()
    assert directory.parent == cache
    assert directory.name == f"{build.KUBERNETES_VERSION}-{build.modules_hash()}"
    assert build.find_binaries() is None


def test_a_complete_cache_is_reused_without_go(
    cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = build.cache_dir() / "bin"
    bin_dir.mkdir(parents=True)
    for binary in build.BINARIES:
        (bin_dir / binary).write_text("")
    monkeypatch.setenv("PEERPODS_GO", "/nonexistent/go")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["cluster", "prepare"]) == 0
    captured = capsys.readouterr()
    assert "reused" in captured.out
    assert str(build.cache_dir()) in captured.out


def test_missing_go_exits_2_saying_what_was_looked_for(
    cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(build, "GO_CANDIDATES", ("/nonexistent/go",))
    monkeypatch.delenv("PEERPODS_GO", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["cluster", "prepare"]) == 2
    err = capsys.readouterr().err
    assert "no Go toolchain was found" in err
    assert "/usr/local/go/bin/go" in err


def test_failed_build_exits_2_with_command_and_last_lines(
    cache: pathlib.Path,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = "".join(f"echo 'compile line {n}' >&2\n" for n in range(60))
    monkeypatch.setenv("PEERPODS_GO", str(_fake_go(tmp_path, lines + "exit 1\n")))
    assert main(["cluster", "prepare"]) == 2
    err = capsys.readouterr().err
    assert "building etcd failed (exit 1)" in err
    assert "go.etcd.io/etcd/server/v3" in err  # the command
    assert "compile line 59" in err and "compile line 10" not in err  # only the tail
    assert build.find_binaries() is None
    assert not [p for p in cache.iterdir() if p.name.startswith(".building")]  # nothing half-made


def test_prepare_builds_each_binary_into_the_cache(
    cache: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a stand-in go that writes the -o file: checks the commands prepare runs, not Go itself
    script = 'if [ "$1" = version ]; then echo go version test; exit 0; fi\n'
    script += (
        'all="$*"\nwhile [ $# -gt 0 ]; do if [ "$1" = -o ]; then echo "$PWD $all" > "$2"; fi; shift; done\n'
    )
    monkeypatch.setenv("PEERPODS_GO", str(_fake_go(tmp_path, script)))
    logged: list[str] = []
    binaries, reused = build.prepare(log=logged.append)
    assert not reused
    for binary in build.BINARIES:
        made = binaries.path(binary).read_text()
        assert made.startswith(str(build.MODULES_DIR / ("etcd" if binary == "etcd" else "kubernetes")))
    assert (
        "k8s.io/component-base/version.gitVersion=" + build.KUBERNETES_VERSION
        in binaries.path("kube-apiserver").read_text()
    )
    assert any("built in" in line for line in logged)
    again, reused = build.prepare(log=logged.append)
    assert reused and again.directory == binaries.directory
    assert os.access(binaries.path("etcd"), os.R_OK)
