"""Steps of features/podvm_lifecycle.feature (steps it shares with other features are in common.py)."""

from __future__ import annotations

import re

from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    Environment,
    Guests,
    LibvirtFaults,
    PodVMs,
    need,
)

from .common import (
    World,
    current_outcome,
)
from .expect import (
    PEERPOD_DIR,
    cloud_config_files,
    current_vm,
    disk,
)


@when(parsers.parse('pod "{name}" in namespace "{namespace}" is deleted'))
def delete_pod(env: Environment, name: str, namespace: str) -> None:
    env.delete_pod(namespace, name)


@given(parsers.parse("libvirt fails while the pod VM's {step} is made"))
def libvirt_fails(env: Environment, step: str) -> None:
    need(env, LibvirtFaults).inject_libvirt_fault(step)


@given(parsers.parse("the pod VMs' guests never report, and the provider waits {seconds:d} seconds"))
def guests_silent(env: Environment, seconds: int) -> None:
    need(env, Guests).silence_guests(float(seconds))


@then(parsers.parse('the pod VM is named "{prefix}" and 8 characters of its sandbox id'))
def named(env: Environment, world: World, prefix: str) -> None:
    name = current_vm(env, world)["name"]
    assert re.fullmatch(re.escape(prefix) + r"[a-z0-9-]{8}", name), f"pod VM name {name!r} is not {prefix}<8>"


@then(parsers.parse('the pod VM is an s390x domain on machine "{machine}"'))
def s390x_domain(env: Environment, world: World, machine: str) -> None:
    facts = current_vm(env, world)
    assert facts["arch"] == "s390x", f"the pod VM's architecture is {facts['arch']!r}"
    canonical = facts["machine"] == machine or str(facts["machine"]).startswith(machine + "-")
    assert canonical, f"machine {facts['machine']!r} is neither {machine} nor its canonical name"


@then(parsers.parse('the pod VM boots from a qcow2 volume in pool "{pool}" backed by "{volume}"'))
def boot_volume(env: Environment, world: World, pool: str, volume: str) -> None:
    facts = current_vm(env, world)
    vda = disk(facts, "vda")
    assert (vda["format"], vda["bus"], vda["iommu"]) == ("qcow2", "virtio", "on"), f"boot disk: {vda}"
    assert facts["pool"] == pool, f"volumes are in pool {facts['pool']!r}"
    assert any(str(vda["source"]).endswith("/" + v) for v in facts["volumes"]), (
        f"the boot disk {vda['source']} is not one of the pod VM's volumes {facts['volumes']}"
    )
    assert str(facts["backing_store"]).endswith("/" + volume), f"backed by {facts['backing_store']!r}"


@then("the pod VM has a raw cloud-init disk carrying its cloud-config")
def cloud_init_disk(env: Environment, world: World) -> None:
    facts = current_vm(env, world)
    vdb = disk(facts, "vdb")
    assert (vdb["format"], vdb["bus"], vdb["iommu"]) == ("raw", "virtio", "on"), f"cloud-init disk: {vdb}"
    user_data = facts["user_data"]
    assert user_data.startswith("#cloud-config"), f"user data is not a cloud-config: {user_data[:40]!r}"
    paths = list(cloud_config_files(user_data))
    assert f"{PEERPOD_DIR}/apf.json" in paths, f"write_files carries {paths}"


@then(
    parsers.parse(
        'the pod VM has an sclp console, a virtio NIC on network "{network}", '
        "a virtio RNG and a memballoon with iommu"
    )
)
def devices(env: Environment, world: World, network: str) -> None:
    facts = current_vm(env, world)
    found = (facts["console"], facts["nic_model"], facts["network"], facts["rng"], facts["memballoon"])
    assert found == ("sclp", "virtio", network, "virtio", "virtio"), f"devices: {found}"
    assert facts["memballoon_iommu"] == "on", "the memballoon has no iommu"


@then("the pod VM has no launch security")
def no_launch_security(env: Environment, world: World) -> None:
    found = current_vm(env, world)["launch_security"]
    assert found is None, f"the pod VM has launch security {found!r}"


@then(parsers.parse('the pod VM has launch security "{kind}"'))
def launch_security(env: Environment, world: World, kind: str) -> None:
    found = current_vm(env, world)["launch_security"]
    assert found == kind, f"the pod VM has launch security {found!r}, expected {kind!r}"


@then(
    parsers.parse(
        'the pod VM has launch security "{kind}", or the LPAR refused it for lacking Secure Execution'
    )
)
def launch_security_or_refused(env: Environment, world: World, kind: str) -> None:
    # An LPAR without the Ultravisor (the emulated one) cannot even define an SE guest:
    # libvirt refuses it, and the pod's sandbox must fail saying so rather than run unprotected.
    state = current_outcome(env, world)
    if state.phase != "Running":
        assert state.reason and "launch security" in state.reason, (
            f"the pod does not run, but not for lack of Secure Execution: {state.reason}"
        )
        return
    launch_security(env, world, kind)


@then("the pod VM has the launch security its host decides")
def host_launch_security(env: Environment, world: World) -> None:
    facts = current_vm(env, world)
    expected = "s390-pv" if facts["host_arch"] == "s390x" else None
    assert facts["launch_security"] == expected, (
        f"on a {facts['host_arch']} host the pod VM has launch security {facts['launch_security']!r}"
    )


@then("the pod VM is not running")
def not_running(env: Environment, world: World) -> None:
    namespace, name = world.pod()
    if env.get_pod(namespace, name).vm is None:
        # CAA deletes a pod VM that never became ready (cloud.go StartVM's cleanup): none may remain
        left = [vm for vm in need(env, PodVMs).pod_vms() if vm.startswith(f"podvm-{name}-")]
        assert not left, f"the pod's VM is gone from the pod, but libvirt still has {', '.join(left)}"
        return
    assert not current_vm(env, world)["active"], "the pod VM's domain is still running"


@then(parsers.parse("the pod VM's root volume holds {gib:d} GiB"))
def root_volume_size(env: Environment, world: World, gib: int) -> None:
    found = current_vm(env, world).get("root_capacity")
    assert found == gib << 30, f"the root volume holds {found} bytes, expected {gib} GiB"


@then(parsers.parse("no pod VM and no volume remains, where upstream would leave {upstream}"))
def nothing_left_unlike_upstream(env: Environment, upstream: str) -> None:
    left = need(env, PodVMs).leftovers()
    assert left == [], (
        f"left behind: {left} (upstream's CreateDomain would leave {upstream}; the suite recommends nothing)"
    )
