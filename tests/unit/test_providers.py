"""The provider interface's naming rule and the in-memory reference provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.peerpods import initdata
from sim.peerpods.cloudconfig import build_user_data
from sim.peerpods.providers import InstanceSpec, Provider, podvm_name
from sim.peerpods.providers.memory import MemoryProvider, UnknownInstanceError

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ("web", "podvm-web-01234567"),
        ("Web_App.v2", "podvm-web-app-v2-01234567"),
        ("ünï", "podvm--n--01234567"),
    ],
)
def test_podvm_name(pod: str, expected: str) -> None:
    assert podvm_name(pod, SANDBOX) == expected


def spec(user_data: str, pod: str = "web") -> InstanceSpec:
    return InstanceSpec(pod, "team-a", SANDBOX, 2, 8192, user_data)


def test_memory_provider_is_a_provider(tmp_path: Path) -> None:
    assert isinstance(MemoryProvider(tmp_path), Provider)


def test_describe_reports_the_spec(tmp_path: Path) -> None:
    provider = MemoryProvider(tmp_path)
    instance = provider.create_instance(spec("#cloud-config\n"))
    facts = provider.describe(instance)
    assert facts["name"] == instance == "podvm-web-01234567"
    assert (facts["vcpus"], facts["memory_mib"], facts["sandbox_id"]) == (2, 8192, SANDBOX)
    assert facts["user_data"] == "#cloud-config\n" and facts["pod_namespace"] == "team-a"
    assert provider.instances() == [instance]


def test_guest_report_runs_the_guest_logic_on_real_files(tmp_path: Path) -> None:
    toml = (ROOT / "fixtures" / "initdata" / "global.toml").read_bytes()
    user_data = build_user_data(apf_json="{}", initdata=initdata.encode(toml))
    provider = MemoryProvider(tmp_path)
    instance = provider.create_instance(spec(user_data))
    report = provider.guest_report(instance)
    assert report.error is None and not report.dummy
    assert report.digest == initdata.digest(toml)
    digest_file = provider.guest_root(instance) / "run" / "peerpod" / "initdata.digest"
    assert digest_file.read_text().strip() == report.digest
    assert provider.guest_report(instance) is report, "computed once"


def test_no_initdata_gives_the_dummy(tmp_path: Path) -> None:
    provider = MemoryProvider(tmp_path)
    report = provider.guest_report(
        provider.create_instance(spec(build_user_data(apf_json="{}", initdata=None)))
    )
    assert report.dummy


def test_delete_removes_instance_and_files(tmp_path: Path) -> None:
    provider = MemoryProvider(tmp_path)
    instance = provider.create_instance(spec(build_user_data(apf_json="{}", initdata=None)))
    provider.guest_report(instance)
    root = provider.guest_root(instance)
    provider.delete_instance(instance)
    assert provider.instances() == [] and not root.exists()
    with pytest.raises(UnknownInstanceError, match="podvm-web-01234567"):
        provider.describe(instance)
    with pytest.raises(UnknownInstanceError):
        provider.delete_instance(instance)


def test_same_name_twice_is_refused(tmp_path: Path) -> None:
    provider = MemoryProvider(tmp_path)
    provider.create_instance(spec("#cloud-config\n"))
    with pytest.raises(Exception, match="already exists"):
        provider.create_instance(spec("#cloud-config\n"))


def test_close_removes_everything(tmp_path: Path) -> None:
    provider = MemoryProvider(tmp_path)
    provider.create_instance(spec("#cloud-config\n"))
    provider.close()
    assert list(tmp_path.iterdir()) == []


def test_podvm_name_truncates_the_pod_name_as_upstream() -> None:
    from sim.peerpods.providers import podvm_name

    sandbox = "AbCdEf12" + "0" * 56
    assert podvm_name("Web_1", sandbox) == "podvm-web-1-abcdef12"
    long_name = "a" * 70
    name = podvm_name(long_name, sandbox)
    assert name == f"podvm-{'a' * 48}-abcdef12" and len(name) == 63
    assert podvm_name("b" * 48, sandbox) == f"podvm-{'b' * 48}-abcdef12"
