"""The minimal pod VM kernel: its configuration check, its cache, and the fallback to Debian's."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from sim.errors import ConformanceInputError
from sim.files import sha256_file
from sim.lpar import assets, builder, kernel
from sim.lpar.builder import Plan

FRAGMENT = kernel.CONFIG_FRAGMENT.read_text()


def _source_dir(tmp_path: Path) -> Path:
    """A directory holding a linux-source tarball (its content is never read by these tests)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "linux-source-6.1.tar.xz").write_bytes(b"not read")
    return source


# --- the configuration ---------------------------------------------------------------------


def test_fragment_asks_for_what_the_pod_vm_needs_built_in() -> None:
    wanted = kernel.fragment_lines(FRAGMENT)
    for option in (
        "CONFIG_S390_GUEST",  # virtio-ccw
        "CONFIG_VIRTIO_BLK",
        "CONFIG_VIRTIO_NET",
        "CONFIG_ISO9660_FS",  # the cidata disk sim/lpar/cidata.py writes
        "CONFIG_SCLP_VT220_CONSOLE",  # console=ttysclp0
        "CONFIG_BLK_DEV_INITRD",
        "CONFIG_DEVTMPFS",
        "CONFIG_PROC_FS",
        "CONFIG_SYSFS",
        "CONFIG_TMPFS",
        "CONFIG_BINFMT_ELF",
        "CONFIG_FUTEX",
    ):
        assert wanted.get(option) == "y", option
    assert "CONFIG_MODULES" not in wanted or wanted["CONFIG_MODULES"] == "n"
    assert wanted["CONFIG_KVM"] == "n"


def test_config_check_passes_when_every_line_survived() -> None:
    dotconfig = "\n".join(f"{name}={value}" for name, value in kernel.fragment_lines(FRAGMENT).items())
    dotconfig = dotconfig.replace("CONFIG_KVM=n", "# CONFIG_KVM is not set")
    assert kernel.check_config(FRAGMENT, dotconfig) == []


def test_config_check_names_every_dropped_option() -> None:
    lines = [f"{name}={value}" for name, value in kernel.fragment_lines(FRAGMENT).items() if value != "n"]
    dotconfig = "\n".join(line for line in lines if not line.startswith("CONFIG_ISO9660_FS="))
    dotconfig = dotconfig.replace("CONFIG_NR_CPUS=2", "CONFIG_NR_CPUS=64") + "\nCONFIG_KVM=y\n"
    lost = kernel.check_config(FRAGMENT, dotconfig)
    assert sorted(lost) == [
        "CONFIG_ISO9660_FS=y (got not set)",
        "CONFIG_KVM=n (got y)",
        "CONFIG_NR_CPUS=2 (got 64)",
    ]


def test_built_kernel_config_kept_every_fragment_line() -> None:
    """The configuration `lpar prepare` really built with (when it has built one here)."""
    configs = sorted(assets.default_cache_dir().glob("kernel-*/config"))
    if not configs:
        pytest.skip("no minimal kernel built in the cache (run `peerpods-conformance lpar prepare`)")
    for config in configs:
        data = json.loads((config.parent / kernel.MANIFEST).read_text())
        if data["config_fragment_sha256"] != hashlib.sha256(FRAGMENT.encode()).hexdigest():
            continue  # built from an older fragment
        assert kernel.check_config(FRAGMENT, config.read_text()) == []
        assert "CONFIG_MODULES=y" not in config.read_text()


# --- the cache -----------------------------------------------------------------------------


class CountingBuild(kernel.KernelBuild):
    """KernelBuild whose compile step is replaced by writing a small image (counts builds)."""

    builds = 0

    def build(self, source: kernel.KernelSource, key: str) -> kernel.BuiltKernel:
        self.builds += 1
        entry = self.entry(key)
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        (entry / "vmlinuz").write_bytes(b"image " + key.encode())
        manifest = {
            "key": key,
            "image": "vmlinuz",
            "image_sha256": sha256_file(entry / "vmlinuz"),
            "release": "6.1.0-test",
        }
        (entry / kernel.MANIFEST).write_text(json.dumps(manifest))
        built = kernel.cached(entry, key)
        assert built is not None
        return built


def test_cached_kernel_is_reused(tmp_path: Path) -> None:
    build = CountingBuild(tmp_path / "cache", log=lambda _: None, source_dir=_source_dir(tmp_path))
    first = build.ensure()
    second = build.ensure()
    assert build.builds == 1
    assert first == second


def test_cache_entry_whose_image_does_not_match_its_hash_is_rebuilt(tmp_path: Path) -> None:
    said: list[str] = []
    build = CountingBuild(tmp_path / "cache", log=said.append, source_dir=_source_dir(tmp_path))
    first = build.ensure()
    first.image.write_bytes(b"tampered")
    again = build.ensure()
    assert build.builds == 2
    assert again.image.read_bytes() != b"tampered"
    assert any("does not match its key or checksum; rebuilding" in line for line in said)


def test_cache_entry_recorded_under_another_key_is_rebuilt(tmp_path: Path) -> None:
    build = CountingBuild(tmp_path / "cache", log=lambda _: None, source_dir=_source_dir(tmp_path))
    first = build.ensure()
    manifest = first.directory / kernel.MANIFEST
    data = json.loads(manifest.read_text())
    data["key"] = "0" * 64
    manifest.write_text(json.dumps(data))
    assert kernel.cached(first.directory, first.key) is None
    build.ensure()
    assert build.builds == 2


def test_key_follows_source_version_configuration_and_compiler(tmp_path: Path) -> None:
    source = kernel.KernelSource("linux-source-6.1", "6.1.192-2", tmp_path / "x.tar.xz")
    newer = kernel.KernelSource("linux-source-6.1", "6.1.193-1", tmp_path / "x.tar.xz")
    keys = {
        kernel.build_key(source, FRAGMENT, "gcc 12"),
        kernel.build_key(newer, FRAGMENT, "gcc 12"),
        kernel.build_key(source, FRAGMENT + "CONFIG_INET=y\n", "gcc 12"),
        kernel.build_key(source, FRAGMENT, "gcc 13"),
    }
    assert len(keys) == 4
    assert all(len(key) == 64 for key in keys)
    assert kernel.build_key(source, FRAGMENT, "gcc 12") == kernel.build_key(source, FRAGMENT, "gcc 12")


def test_missing_kernel_source_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ConformanceInputError, match="apt-get install linux-source gcc-s390x-linux-gnu"):
        kernel.find_source(tmp_path)


# --- a failed build ------------------------------------------------------------------------


def test_broken_toolchain_fails_naming_the_step_and_the_log(tmp_path: Path) -> None:
    broken = str(tmp_path / "no-such-toolchain" / "s390x-linux-gnu-")
    build = kernel.KernelBuild(
        tmp_path / "cache", log=lambda _: None, cross_compile=broken, source_dir=_source_dir(tmp_path)
    )
    with pytest.raises(kernel.KernelBuildError) as caught:
        build.ensure()
    error = caught.value
    assert error.step == "toolchain"
    assert error.log_path.is_file()
    message = str(error)
    assert "kernel build step 'toolchain' failed" in message
    assert "last lines of the log" in message and "no-such-toolchain" in message
    assert str(error.log_path) in message
    assert not list((tmp_path / "cache").glob("kernel-build-*")), "the build tree is removed"
    assert not [p for p in (tmp_path / "cache").glob("kernel-*") if p.is_dir()], "no cache entry"


def test_failed_build_falls_back_to_debian_with_a_warning_naming_the_log(tmp_path: Path) -> None:
    said: list[str] = []
    broken = kernel.KernelBuild(
        tmp_path / "cache",
        log=said.append,
        cross_compile=str(tmp_path / "missing" / "s390x-linux-gnu-"),
        source_dir=_source_dir(tmp_path),
    )
    assert builder.minimal_kernel(tmp_path / "cache", said.append, kernel_build=broken) is None
    warning = "\n".join(line for line in said if "WARNING" in line)
    assert "using Debian's s390x kernel instead" in warning
    assert "'toolchain'" in warning
    assert str(broken.log_path(broken.key()[1])) in warning


def test_prepare_refuses_an_unknown_kernel(tmp_path: Path) -> None:
    with pytest.raises(ConformanceInputError, match="--kernel 'tiny'"):
        builder.prepare(tmp_path, kernel="tiny")


# --- the image key and which image a run boots -----------------------------------------------


def test_image_key_differs_by_kernel_and_debian_key_is_unchanged() -> None:
    debian = Plan(packages={"linux-image-6.1.0-50-s390x": "6.1.176-1"}, go_version="go1.19", agent_sha256="a")
    minimal = Plan(
        packages={"linux-source-6.1": "6.1.192-2"}, go_version="go1.19", agent_sha256="a", minimal_kernel="k1"
    )
    other = Plan(
        packages={"linux-source-6.1": "6.1.192-2"}, go_version="go1.19", agent_sha256="a", minimal_kernel="k2"
    )
    assert minimal.modules == () and debian.modules == builder.MODULES
    assert len({debian.key, minimal.key, other.key}) == 3


def _image(cache: Path, key: str, flavour: str) -> None:
    directory = cache / f"assets-{key}"
    directory.mkdir(parents=True)
    (directory / "vmlinuz").write_bytes(flavour.encode())
    (directory / "initrd.gz").write_bytes(b"initrd")
    manifest = {
        "key": key,
        "kernel": {
            "file": "vmlinuz",
            "sha256": sha256_file(directory / "vmlinuz"),
            "flavour": flavour,
        },
        "initrd": {"file": "initrd.gz", "sha256": sha256_file(directory / "initrd.gz")},
        "cmdline": "console=ttysclp0",
        "packages": {},
        "agent_source_sha256": assets.agent_source_digest(),
    }
    (directory / assets.MANIFEST).write_text(json.dumps(manifest))


def test_run_prefers_the_minimal_kernel_and_env_selects(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(assets.KERNEL_ENV, raising=False)
    _image(tmp_path, "minimal000000000", "minimal")
    _image(tmp_path, "debian0000000000", "debian")
    assert assets.find_assets(tmp_path).flavour == "minimal"
    assert assets.find_assets(tmp_path, kernel="debian").flavour == "debian"
    monkeypatch.setenv(assets.KERNEL_ENV, "debian")
    assert assets.find_assets(tmp_path).kernel.read_bytes() == b"debian"
    monkeypatch.setenv(assets.KERNEL_ENV, "tiny")
    with pytest.raises(ConformanceInputError, match=r"\$PEERPODS_KERNEL='tiny'"):
        assets.find_assets(tmp_path)


def test_debian_image_is_the_fallback_and_a_missing_choice_says_how(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(assets.KERNEL_ENV, raising=False)
    _image(tmp_path, "debian0000000000", "debian")
    assert assets.find_assets(tmp_path).flavour == "debian"
    with pytest.raises(assets.AssetsMissing, match="lpar prepare --kernel minimal"):
        assets.find_assets(tmp_path, kernel="minimal")
