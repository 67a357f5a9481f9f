"""Refreshing a storage pool that another libvirt client is building a volume in (sim.lpar.host
``refresh_pool``), and a leftover check that cannot list the pool (it fails; it never says "none").

libvirt refuses ``virStoragePoolRefresh`` while a volume build holds an asynchronous job on the
pool. A worker of a parallel run, or a second run, that started while another built a pod VM's
volume failed every one of its scenarios with "pool 'default' has asynchronous jobs running".
The pool here is a stand-in that raises libvirt's own error class; the race on a real daemon is
in tests/integration/test_lpar_two_runs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("libvirt")

import libvirt

from sim.errors import TargetError
from sim.lpar import host
from sim.peerpods.providers.libvirt import LibvirtSettings
from sim.peerpods.providers.libvirt_storage import LibvirtStorage

BUSY = "internal error: pool 'default' has asynchronous jobs running."


class FlakyPool:
    """Stands in for a libvirt storage pool whose refresh fails with ``errors`` in turn, then works."""

    def __init__(self, *errors: str) -> None:
        self.errors = list(errors)
        self.refreshes = 0

    def refresh(self, flags: int) -> int:
        self.refreshes += 1
        if self.errors:
            raise libvirt.libvirtError(self.errors.pop(0))
        return 0

    def listVolumes(self) -> list[str]:
        return ["podvm-web-01234567-root.qcow2", "podvm-base.qcow2", "other.img"]


class Connection:
    """Stands in for a libvirt connection that has one pool."""

    def __init__(self, pool: FlakyPool | None) -> None:
        self.pool = pool

    def storagePoolLookupByName(self, name: str) -> FlakyPool:
        if self.pool is None:
            raise libvirt.libvirtError(f"Storage pool not found: no storage pool with matching name '{name}'")
        return self.pool

    def getURI(self) -> str:
        return "qemu:///system"


def test_a_busy_pool_is_refreshed_once_the_other_clients_build_ends() -> None:
    pool = FlakyPool(BUSY, BUSY, BUSY)
    host.refresh_pool(pool)
    assert pool.refreshes == 4


def test_any_other_refresh_failure_is_raised_at_once() -> None:
    pool = FlakyPool("cannot open directory '/var/lib/libvirt/images': Permission denied", BUSY)
    with pytest.raises(libvirt.libvirtError, match="Permission denied"):
        host.refresh_pool(pool)
    assert pool.refreshes == 1


def test_a_pool_busy_beyond_the_wait_raises_libvirts_error() -> None:
    pool = FlakyPool(*[BUSY] * 100)
    with pytest.raises(libvirt.libvirtError, match="asynchronous jobs running"):
        host.refresh_pool(pool, wait=0.05)
    assert 2 <= pool.refreshes < 100


def storage(connection: Connection, tmp_path: Path) -> LibvirtStorage:
    return LibvirtStorage(connection, libvirt, simulated=False, work_dir=tmp_path, settings=LibvirtSettings)


def test_leftovers_wait_for_a_busy_pool(tmp_path: Path) -> None:
    found = storage(Connection(FlakyPool(BUSY)), tmp_path).leftovers("podvm-")
    assert found == ["volume podvm-web-01234567-root.qcow2"]


def test_leftovers_of_a_pool_that_cannot_be_listed_fail_naming_the_pool(tmp_path: Path) -> None:
    broken = storage(Connection(FlakyPool("Input/output error")), tmp_path)
    with pytest.raises(TargetError, match="cannot list the volumes of pool 'default' at qemu:///system"):
        broken.leftovers("podvm-")


def test_no_pool_has_no_leftovers(tmp_path: Path) -> None:
    assert storage(Connection(None), tmp_path).leftovers("podvm-") == []
