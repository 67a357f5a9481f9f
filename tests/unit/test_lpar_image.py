"""The pod VM image's pieces: the initramfs writer, the asset cache and its checks."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sim.files import sha256_file
from sim.lpar import assets, cpio
from sim.lpar.builder import Plan


def test_newc_archive_is_read_back_by_cpio(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("cpio is not installed")
    entries = [
        cpio.Entry("bin", cpio.S_IFDIR | 0o755),
        cpio.Entry("bin/tool", cpio.S_IFREG | 0o755, b"#!/bin/sh\necho hi\n"),
        cpio.Entry("bin/link", cpio.S_IFLNK | 0o777, b"tool"),
        cpio.Entry("odd", cpio.S_IFREG | 0o644, b"x" * 5),
    ]
    archive = tmp_path / "a.cpio"
    archive.write_bytes(cpio.write_newc(entries))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "-F", str(archive)], cwd=out, check=True)
    assert (out / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "bin/tool").stat().st_mode & 0o111
    assert (out / "bin/link").readlink() == Path("tool")
    assert (out / "odd").read_bytes() == b"xxxxx"


def test_initramfs_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/f").write_bytes(b"data")
    first = cpio.gzip_newc(cpio.tree_entries(tmp_path))
    (tmp_path / "d/f").touch()  # a new mtime must not change the archive
    assert cpio.gzip_newc(cpio.tree_entries(tmp_path)) == first
    assert gzip.decompress(first).startswith(b"070701")


def _fake_build(cache: Path, *, agent: str | None = None) -> assets.Assets:
    """A cache directory laid out as `lpar prepare` lays it out, with stand-in files."""
    directory = cache / "assets-0123456789abcdef"
    directory.mkdir(parents=True)
    (directory / "vmlinuz").write_bytes(b"kernel")
    (directory / "initrd.gz").write_bytes(b"initrd")
    manifest = {
        "key": "0123456789abcdef",
        "kernel": {"file": "vmlinuz", "sha256": sha256_file(directory / "vmlinuz")},
        "initrd": {"file": "initrd.gz", "sha256": sha256_file(directory / "initrd.gz")},
        "cmdline": "console=ttysclp0",
        "packages": {"busybox-static": "1"},
        "agent_source_sha256": agent or assets.agent_source_digest(),
    }
    (directory / assets.MANIFEST).write_text(json.dumps(manifest))
    return assets.find_assets(cache)


def test_assets_are_found_and_verified(tmp_path: Path) -> None:
    found = _fake_build(tmp_path)
    assert found.kernel.read_bytes() == b"kernel"
    assert found.cmdline == "console=ttysclp0"


def test_missing_assets_say_run_lpar_prepare(tmp_path: Path) -> None:
    with pytest.raises(assets.AssetsMissing, match="lpar prepare"):
        assets.find_assets(tmp_path / "empty")


def test_corrupted_asset_fails_its_checksum(tmp_path: Path) -> None:
    found = _fake_build(tmp_path)
    found.initrd.write_bytes(b"tampered")
    with pytest.raises(assets.AssetsMissing, match=r"fails its checksum.*lpar prepare"):
        assets.find_assets(tmp_path)


def test_image_built_from_another_agent_source_is_stale(tmp_path: Path) -> None:
    with pytest.raises(assets.AssetsMissing, match="current podvm-agent source"):
        _fake_build(tmp_path, agent="0" * 64)


def test_cache_dir_follows_peerpods_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PEERPODS_CACHE", str(tmp_path))
    assert assets.default_cache_dir() == tmp_path


def test_cache_key_changes_with_agent_and_packages() -> None:
    base = Plan(packages={"linux-image-6.1.0-50-s390x": "6.1.176-1"}, go_version="go1.19", agent_sha256="a")
    other_agent = Plan(packages=base.packages, go_version="go1.19", agent_sha256="b")
    other_kernel = Plan(
        packages={"linux-image-6.1.0-50-s390x": "6.1.177-1"}, go_version="go1.19", agent_sha256="a"
    )
    assert len({base.key, other_agent.key, other_kernel.key}) == 3
    assert base.key == Plan(packages=dict(base.packages), go_version="go1.19", agent_sha256="a").key
