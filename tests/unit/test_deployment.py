"""PeerPodsDeployment: peer-pods-cm and peer-pods-secret as the adaptor reads them."""

from __future__ import annotations

from sim.harness.targets.deployment import SCENARIO_KEYS, PeerPodsDeployment
from sim.kube.profiles import OPENSHIFT_SECRET_KEYS


def test_the_defaults_leave_out_what_a_scenario_decides() -> None:
    data = PeerPodsDeployment().configmap_data()
    assert data["CLOUD_PROVIDER"] == "libvirt"
    assert not set(SCENARIO_KEYS) & set(data)


def test_scenario_keys_override_the_defaults_and_replace_the_earlier_ones() -> None:
    deployment = PeerPodsDeployment()
    deployment.set_configmap({"LIBVIRT_CPU": "4", "PEERPODS_LIMIT_PER_NODE": "2"})
    deployment.set_configmap({"PEERPODS_LIMIT_PER_NODE": "3"})
    manifest = deployment.configmap()
    assert manifest["kind"] == "ConfigMap" and manifest["metadata"]["name"] == "peer-pods-cm"
    assert manifest["data"]["LIBVIRT_CPU"] == "2"
    assert manifest["data"]["PEERPODS_LIMIT_PER_NODE"] == "3"


def test_openshift_keeps_the_libvirt_connection_in_the_secret() -> None:
    deployment = PeerPodsDeployment()
    uri = deployment.configmap_data()["LIBVIRT_URI"]
    deployment.use_profile("openshift")
    assert not set(OPENSHIFT_SECRET_KEYS) & set(deployment.configmap_data())
    assert deployment.secret()["stringData"]["LIBVIRT_URI"] == uri
    assert deployment.adaptor_environment()["LIBVIRT_URI"] == uri


def test_the_chart_profile_moves_nothing() -> None:
    deployment = PeerPodsDeployment()
    deployment.use_profile("caa-chart")
    assert deployment.secret()["stringData"] == {}


def test_the_configmap_wins_over_the_secret_in_the_adaptor_environment() -> None:
    """envFrom lists the secret, then the config map: a later source wins a key in both."""
    deployment = PeerPodsDeployment()
    deployment.set_secret({"LIBVIRT_POOL": "from-secret", "ONLY_SECRET": "s"})
    deployment.set_configmap({"LIBVIRT_POOL": "from-cm"})
    env = deployment.adaptor_environment()
    assert env["LIBVIRT_POOL"] == "from-cm"
    assert env["ONLY_SECRET"] == "s"


def test_a_default_in_the_configmap_wins_over_a_scenario_secret_key() -> None:
    deployment = PeerPodsDeployment()
    deployment.set_secret({"LIBVIRT_NET": "from-secret"})
    assert deployment.adaptor_environment()["LIBVIRT_NET"] == "default"


def test_the_provider_sees_the_host_keys_unless_the_scenario_set_them() -> None:
    deployment = PeerPodsDeployment()
    deployment.set_secret({"LIBVIRT_NET": "scenario-net"})
    env = deployment.provider_environment({"LIBVIRT_NET": "host-net", "LIBVIRT_POOL": "host-pool"})
    assert env["LIBVIRT_NET"] == "scenario-net"
    assert env["LIBVIRT_POOL"] == "host-pool"
