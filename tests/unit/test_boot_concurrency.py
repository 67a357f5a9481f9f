"""Boot concurrency: given, or one per core shared by the workers on an LPAR, or measured;
always with its reason; and the per-LPAR account of every pod VM's queued and booting time."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from sim.errors import ConformanceInputError
from sim.harness.targets import bootconcurrency
from sim.peerpods.providers.libvirt_boot import BootQueue, Instance


@pytest.mark.parametrize("value", ["0", "-1", "two", ""])
def test_a_bad_setting_is_refused_naming_the_flag(value: str) -> None:
    with pytest.raises(ConformanceInputError, match=r"--boot-concurrency"):
        bootconcurrency.check_setting(value)


def test_a_given_number_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = bootconcurrency.choose(SimpleNamespace(simulated=False), "3")  # type: ignore[arg-type]
    assert (chosen.count, chosen.reason) == (3, "--boot-concurrency 3")


def test_by_default_it_measures_one_per_core_of_the_workers_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setenv(bootconcurrency.SHARE_ENV, "2")
    asked: list[int] = []
    timings = {1: 1.0, 4: 1.5}

    def boot_together(lpar: object, count: int) -> float:
        asked.append(count)
        return timings[count]

    monkeypatch.setattr(bootconcurrency, "boot_together", boot_together)
    chosen = bootconcurrency.choose(SimpleNamespace(simulated=False), None)  # type: ignore[arg-type]
    assert asked == [1, 4] and chosen.count == 4
    assert chosen.reason.startswith("measured: 4 probe pod VMs at once took 1.50 s, one alone 1.00 s")


def test_a_worker_with_one_core_to_itself_measures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setenv(bootconcurrency.SHARE_ENV, "2")
    monkeypatch.setattr(bootconcurrency, "boot_together", lambda lpar, count: pytest.fail("measured"))
    chosen = bootconcurrency.choose(SimpleNamespace(simulated=False), None)  # type: ignore[arg-type]
    assert (
        chosen.count == 1 and "shared by 2 workers" in chosen.reason and "nothing to measure" in chosen.reason
    )


@pytest.mark.parametrize(("alone", "together", "expected"), [(2.0, 2.4, 2), (2.3, 6.2, 1)])
def test_measured_concurrency_is_kept_only_when_it_pays(
    monkeypatch: pytest.MonkeyPatch, alone: float, together: float, expected: int
) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.delenv(bootconcurrency.SHARE_ENV, raising=False)
    timings = {1: alone, 2: together}
    monkeypatch.setattr(bootconcurrency, "boot_together", lambda lpar, count: timings[count])
    chosen = bootconcurrency.choose(SimpleNamespace(simulated=False), "measure")  # type: ignore[arg-type]
    assert chosen.count == expected
    assert f"at once took {together:.2f} s" in chosen.reason and f"one alone {alone:.2f} s" in chosen.reason


def test_the_queue_chooses_at_its_first_boot_and_logs_each_pod_vm() -> None:
    asked: list[int] = []

    def choose() -> int:
        asked.append(1)
        return 1

    queue = BootQueue(choose=choose)
    assert asked == []  # nothing booted, nothing measured
    instance = Instance("podvm-a-12345678", [], console=None)  # type: ignore[arg-type]
    instance.defined_at = time.monotonic() - 1.0

    def job() -> None:
        instance.started_at = time.monotonic()
        instance.report = object()  # type: ignore[assignment]
        instance.reported_at = instance.started_at + 0.5
        queue.record(instance)

    queue.submit(job)
    queue.shutdown()
    assert asked == [1] and queue.workers == 1
    (record,) = queue.log
    assert record.outcome == "reported" and record.queued >= 1.0 and record.booting == pytest.approx(0.5)


def test_the_lpar_says_how_its_boots_went() -> None:
    from sim.harness.targets.lparhost import LparHost

    lpar: Any = SimpleNamespace(
        uri="qemu:///system",
        boot_queue=SimpleNamespace(
            log=[
                bootconcurrency_record("a", 0.0, 2.0, "reported"),
                bootconcurrency_record("b", 1.5, 2.5, "reported"),
                bootconcurrency_record("c", 0.2, None, "failed"),
            ]
        ),
        boot_concurrency=bootconcurrency.Concurrency(2, "measured: it pays"),
    )
    line = LparHost.boot_summary(lpar)
    assert line is not None
    assert "2 reported, 1 failed" in line and "queued median 0.20 s, max 1.50 s" in line
    assert "booting median 2.50 s, max 2.50 s, 4.5 s in all" in line
    assert "2 at once: measured: it pays" in line


def bootconcurrency_record(name: str, queued: float, booting: float | None, outcome: str) -> Any:
    from sim.peerpods.providers.libvirt_boot import BootRecord

    return BootRecord(name, queued, booting, outcome)
