"""The cloud-api-adaptor: reading peer-pods-cm at start, sizing pod VMs, user data."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path
from typing import Any

import pytest

from sim.peerpods import initdata
from sim.peerpods.adaptor import (
    AdaptorConfig,
    AdaptorConfigError,
    AdaptorStartError,
    CloudApiAdaptor,
    PodVMError,
)
from sim.peerpods.cloudconfig import APF_PATH, INITDATA_PATH, parse_user_data
from sim.peerpods.providers.memory import MemoryProvider
from sim.peerpods.webhook import ANN_MEMORY, ANN_VCPUS

ROOT = Path(__file__).resolve().parents[2]
GLOBAL = initdata.encode((ROOT / "fixtures" / "initdata" / "global.toml").read_bytes())
OWN = initdata.encode((ROOT / "fixtures" / "initdata" / "attestation.toml").read_bytes())


def pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "team-a", "annotations": annotations or {}},
        "spec": {"runtimeClassName": "kata-remote", "containers": [{"name": "app", "image": "app"}]},
    }


@pytest.fixture
def adaptor(tmp_path: Path) -> CloudApiAdaptor:
    return CloudApiAdaptor("worker-0", MemoryProvider(tmp_path))


def test_defaults_when_the_config_map_says_nothing() -> None:
    config = AdaptorConfig.from_configmap({})
    assert (config.limit, config.vcpus, config.memory_mib, config.advertised) == (10, 2, 8192, 10)
    assert AdaptorConfig.from_configmap(None).advertised == 10
    assert AdaptorConfig.from_configmap({"PEERPODS_LIMIT_PER_NODE": ""}).advertised == 10


@pytest.mark.parametrize(
    ("value", "advertised"), [("3", 3), ("0", 0), (" 25 ", 25), ("-1", None), ("-20", None)]
)
def test_limit_and_negative_advertises_nothing(value: str, advertised: int | None) -> None:
    assert AdaptorConfig.from_configmap({"PEERPODS_LIMIT_PER_NODE": value}).advertised == advertised


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PEERPODS_LIMIT_PER_NODE", "ten"),
        ("PEERPODS_LIMIT_PER_NODE", "2.5"),
        ("LIBVIRT_CPU", "two"),
        ("LIBVIRT_CPU", "0"),
        ("LIBVIRT_MEMORY", "8Gi"),
    ],
)
def test_bad_numbers_name_the_key(key: str, value: str) -> None:
    with pytest.raises(AdaptorConfigError, match=f"peer-pods-cm: {key}: {value!r}"):
        AdaptorConfig.from_configmap({key: value})


def test_start_returns_capacity_and_freezes_the_config(adaptor: CloudApiAdaptor) -> None:
    data = {"PEERPODS_LIMIT_PER_NODE": "4"}
    assert adaptor.start(data) == 4
    data["PEERPODS_LIMIT_PER_NODE"] = "9"
    assert adaptor.config is not None and adaptor.config.limit == 4, "read once, at start"
    assert adaptor.start(data) == 9


def test_vm_is_sized_from_annotations(adaptor: CloudApiAdaptor) -> None:
    adaptor.start({})
    spec = adaptor.instance_spec(pod({ANN_VCPUS: "3", ANN_MEMORY: "5120"}))
    assert (spec.vcpus, spec.memory_mib) == (3, 5120)


def test_vm_falls_back_to_libvirt_defaults(adaptor: CloudApiAdaptor) -> None:
    adaptor.start({"LIBVIRT_CPU": "4", "LIBVIRT_MEMORY": "4096"})
    spec = adaptor.instance_spec(pod({ANN_VCPUS: "1"}))
    assert (spec.vcpus, spec.memory_mib) == (1, 4096)


@pytest.mark.parametrize("value", ["many", "1.5", "", "-2", "0"])
def test_an_annotation_that_is_no_positive_integer_falls_back_to_the_default(
    adaptor: CloudApiAdaptor, value: str
) -> None:
    adaptor.start({"LIBVIRT_CPU": "3", "LIBVIRT_MEMORY": "3072"})
    spec = adaptor.instance_spec(pod({ANN_VCPUS: value, ANN_MEMORY: value}))
    assert (spec.vcpus, spec.memory_mib) == (3, 3072)


def test_a_broken_global_initdata_stops_the_adaptor_at_start(adaptor: CloudApiAdaptor) -> None:
    with pytest.raises(AdaptorStartError, match="failed to parse global initdata: initdata is not gzip"):
        adaptor.start({"INITDATA": base64.b64encode(b"plain text!!").decode()})
    assert adaptor.config is None
    with pytest.raises(PodVMError, match="is not running: failed to parse global initdata"):
        adaptor.create_pod_vm(pod())


def test_sandbox_id_is_64_hex_and_fresh(adaptor: CloudApiAdaptor) -> None:
    adaptor.start({})
    first, second = adaptor.instance_spec(pod()), adaptor.instance_spec(pod())
    assert len(first.sandbox_id) == 64 and int(first.sandbox_id, 16) >= 0
    assert first.sandbox_id != second.sandbox_id


def paths(user_data: str) -> dict[str, str]:
    return {entry.path: entry.content for entry in parse_user_data(user_data)}


def test_user_data_carries_the_global_initdata(adaptor: CloudApiAdaptor) -> None:
    adaptor.start({"INITDATA": GLOBAL})
    files = paths(adaptor.instance_spec(pod()).user_data)
    assert files[INITDATA_PATH] == GLOBAL and APF_PATH in files


def test_the_pod_annotation_wins_and_is_encoded_again(adaptor: CloudApiAdaptor) -> None:
    adaptor.start({"INITDATA": GLOBAL})
    # Kata hands the adaptor the decoded TOML text; the adaptor gzips and base64-encodes it.
    toml = (ROOT / "fixtures" / "initdata" / "attestation.toml").read_text()
    sent = paths(adaptor.instance_spec(pod({initdata.ANNOTATION: toml})).user_data)[INITDATA_PATH]
    assert gzip.decompress(base64.b64decode(sent)).decode() == toml
    assert paths(adaptor.instance_spec(pod({initdata.ANNOTATION: ""})).user_data)[INITDATA_PATH] == GLOBAL


def test_no_initdata_at_all(adaptor: CloudApiAdaptor) -> None:
    adaptor.start({})
    assert INITDATA_PATH not in paths(adaptor.instance_spec(pod()).user_data)


def test_cm_initdata_is_read_at_start_only(adaptor: CloudApiAdaptor) -> None:
    data: dict[str, str] = {}
    adaptor.start(data)
    data["INITDATA"] = GLOBAL
    assert INITDATA_PATH not in paths(adaptor.instance_spec(pod()).user_data)


class FakeBrokenProvider(MemoryProvider):
    """Fake: a provider whose every creation fails, to see the adaptor report it."""

    def create_instance(self, spec: Any) -> str:
        raise RuntimeError("storage pool 'default' is full")


def test_provider_failure_becomes_the_pods_reason(tmp_path: Path) -> None:
    adaptor = CloudApiAdaptor("worker-0", FakeBrokenProvider(tmp_path))
    adaptor.start({})
    with pytest.raises(
        PodVMError, match="creating pod VM for pod team-a/web failed: storage pool 'default' is full"
    ):
        adaptor.create_pod_vm(pod())


def test_not_started(adaptor: CloudApiAdaptor) -> None:
    with pytest.raises(PodVMError, match="is not running"):
        adaptor.create_pod_vm(pod())


def test_the_fixture_config_map_is_libvirts_with_the_default_limit() -> None:
    import yaml

    cm = yaml.safe_load((ROOT / "fixtures" / "cluster" / "peer-pods-cm.yaml").read_text())
    assert "DISABLECVM" not in cm["data"]  # upstream's default (true) applies, as in OSC's peerpodscm.yaml
    assert cm["metadata"]["name"] == "peer-pods-cm" and cm["data"]["CLOUD_PROVIDER"] == "libvirt"
    for key in (
        "LIBVIRT_URI",
        "LIBVIRT_NET",
        "LIBVIRT_POOL",
        "LIBVIRT_VOL_NAME",
        "LIBVIRT_ROOT_DISK_SIZE",
    ):
        assert key in cm["data"]
    config = AdaptorConfig.from_configmap(cm["data"])
    assert (config.limit, config.vcpus, config.memory_mib) == (10, 2, 8192)
    assert all(isinstance(value, str) for value in cm["data"].values()), "ConfigMap data are strings"
