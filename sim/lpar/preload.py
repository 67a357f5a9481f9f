"""Building the LPAR emulation's preloaded libraries, and preloading them into one process.

Two pieces of the emulated LPAR sit in front of libvirt's client library inside the
adaptor's process (LD_PRELOAD), never in the suite's: the IBM Z KVM host
(:mod:`sim.lpar.ibmz_host`) and libvirt failing on request (:mod:`sim.lpar.libvirt_faults`).
Each is one C file beside its module, compiled with gcc against libvirt's headers into the
LPAR cache (``<cache>/<name>-<sha256 of the source>/``), once per source version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from plumbum import local

from sim.errors import ConformanceInputError
from sim.lpar.assets import default_cache_dir

__all__ = ["HEADER", "INSTALL_HINT", "PRELOAD", "LayerUnavailable", "build", "preload_environment"]

#: Where libvirt's development headers are looked for when pkg-config does not know libvirt.
HEADER = Path("/usr/include/libvirt/libvirt.h")
PRELOAD = "LD_PRELOAD"
INSTALL_HINT = "apt-get install gcc libvirt-dev pkg-config"


class LayerUnavailable(ConformanceInputError):
    """A preloaded piece of the LPAR cannot be built here; the message names what is missing."""


def source_digest(source: Path) -> str:
    """SHA-256 of the C source: the cache key of the compiled library."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def _libvirt_cflags(what: str, error: type[LayerUnavailable]) -> list[str]:
    """pkg-config's flags for libvirt, or the default include path when its header is there."""
    pkg_config = shutil.which("pkg-config")
    if pkg_config is not None:
        returncode, stdout, _ = local[pkg_config]["--cflags", "libvirt"].run(retcode=None)
        if returncode == 0:
            return str(stdout).split()
    if HEADER.is_file():
        return []
    raise error(f"{what} needs libvirt's headers ({HEADER} or pkg-config's libvirt): {INSTALL_HINT}")


def build(
    source: Path,
    library: str,
    prefix: str,
    cache: Path | None,
    *,
    what: str,
    error: type[LayerUnavailable] = LayerUnavailable,
) -> Path:
    """The compiled ``source`` (built on first use) as ``<cache>/<prefix>-<digest>/<library>``;
    ``error`` naming ``what`` and the missing tool when it cannot be built."""
    digest = source_digest(source)
    directory = (cache or default_cache_dir()) / f"{prefix}-{digest[:16]}"
    built = directory / library
    if built.is_file():
        return built
    gcc = shutil.which("gcc")
    if gcc is None:
        raise error(f"{what} is C and gcc is not installed: {INSTALL_HINT}")
    flags = _libvirt_cflags(what, error)
    directory.mkdir(parents=True, exist_ok=True)
    # compiled beside its final name, then renamed: a concurrent run never loads half a file
    handle, partial = tempfile.mkstemp(dir=directory, prefix=".build-", suffix=".so")
    os.close(handle)
    command = local[gcc][
        "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", *flags, "-o", partial, str(source), "-ldl"
    ]  # fmt: skip
    returncode, _, stderr = command.run(retcode=None)
    if returncode != 0:
        Path(partial).unlink(missing_ok=True)
        raise error(
            f"gcc could not build {what} from {source} ({returncode}): "
            f"{str(stderr).strip()[-800:]}; {INSTALL_HINT}"
        )
    Path(partial).chmod(0o755)
    Path(partial).replace(built)
    return built


def preload_environment(library: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: none) with ``library`` first in LD_PRELOAD, for the adaptor's process only."""
    merged = dict(env or {})
    already = merged.get(PRELOAD, "")
    merged[PRELOAD] = f"{library}:{already}" if already else str(library)
    return merged
