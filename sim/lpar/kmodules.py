"""Which kernel modules an initramfs must carry, in load order, read from the kernel package.

A Debian kernel package ships its modules without ``modules.dep`` (``depmod`` makes it at
install time), so the order comes from each module's own ``depends=`` line in its
``.modinfo`` section. Modules the kernel has built in (``modules.builtin``) are skipped.
The agent inserts the listed files one by one with finit_module(2) (no modprobe in the guest).
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from pathlib import Path

from sim.errors import ConformanceInputError


class ModuleError(ConformanceInputError):
    """A wanted module is neither built in nor shipped by the kernel package."""


@dataclass(frozen=True)
class Module:
    """One module file to put in the initramfs."""

    name: str  # with underscores, as the kernel names it
    data: bytes  # uncompressed: finit_module on 6.1 takes no compressed file


def _canonical(name: str) -> str:
    return name.replace("-", "_")


def _index(module_dir: Path) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in sorted((module_dir / "kernel").rglob("*.ko*")):
        stem = path.name.split(".ko", 1)[0]
        index.setdefault(_canonical(stem), path)
    return index


def _builtin(module_dir: Path) -> set[str]:
    listing = module_dir / "modules.builtin"
    if not listing.is_file():
        return set()
    return {
        _canonical(Path(line.strip()).name.split(".ko", 1)[0]) for line in listing.read_text().splitlines()
    }


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.name.endswith(".xz") else data


def depends(data: bytes) -> list[str]:
    """The ``depends=`` list of a module's .modinfo section (empty when it has none)."""
    marker = data.find(b"\0depends=")
    if marker < 0:
        return []
    start = marker + len(b"\0depends=")
    value = data[start : data.index(b"\0", start)].decode()
    return [_canonical(name) for name in value.split(",") if name]


def load_order(module_dir: Path, wanted: tuple[str, ...]) -> list[Module]:
    """``wanted`` and what they depend on, dependencies first; built-in ones left out."""
    index = _index(module_dir)
    builtin = _builtin(module_dir)
    ordered: list[Module] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen or name in builtin:
            return
        path = index.get(name)
        if path is None:
            via = f" (needed by {' -> '.join(chain)})" if chain else ""
            raise ModuleError(f"kernel modules in {module_dir} have no {name}{via}")
        data = _read(path)
        seen.add(name)
        for dependency in depends(data):
            visit(dependency, (*chain, name))
        ordered.append(Module(name, data))

    for name in wanted:
        visit(_canonical(name), ())
    return ordered
