"""Steps about pod VMs: what the provider made (name, domain, disks, devices, launch
security, size), the user data and initdata they received, what their guests did with it,
faults while making them, and what is left once they are gone."""

from __future__ import annotations

import hashlib
import re
import tomllib

from pytest_bdd import given, parsers, then

from sim.harness.targets.base import (
    Environment,
    Guests,
    LibvirtFaults,
    PodVMNetwork,
    PodVMs,
    need,
)

from . import pods
from .expect import (
    ALLOW_LISTED,
    DEFAULT_INITDATA_ALGORITHM,
    IBM_Z_MACHINE,
    PEERPOD_DIR,
    assert_received,
    cloud_config_files,
    current_vm,
    decoded,
    disk,
    inline_initdata_of,
    namespace_of,
    user_data_files,
)
from .world import World, current_outcome, step


@then(parsers.parse('pod "{name}" in namespace "{namespace}" received the initdata of "{file_name}"'))
def named_received(env: Environment, name: str, namespace: str, file_name: str) -> None:
    assert_received(env, (namespace, name), file_name)


@then("the pod VM used the default initdata")
def used_default(env: Environment, world: World) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.dummy, "the pod VM did not fall back to the default initdata"
    assert report.algorithm == DEFAULT_INITDATA_ALGORITHM, (
        f"default initdata digested with {report.algorithm}"
    )
    assert len(report.digest) == hashlib.sha256().digest_size * 2, f"digest {report.digest!r} is not sha256"


@then("no pod VM was requested")
def no_pod_vm(env: Environment, world: World) -> None:
    state = current_outcome(env, world)
    assert state.vm is None, f"the pod has a pod VM {state.vm}"
    assert need(env, PodVMs).pod_vms() == [], f"pod VMs exist: {need(env, PodVMs).pod_vms()}"


@then(parsers.parse("the pod VM has {vcpus:d} vCPUs and {memory:d} MiB of memory"))
def sized(env: Environment, world: World, vcpus: int, memory: int) -> None:
    facts = current_vm(env, world)
    assert (facts["vcpus"], facts["memory_mib"]) == (vcpus, memory), (
        f"the pod VM has {facts['vcpus']} vCPUs and {facts['memory_mib']} MiB"
    )


@then("no pod VM and no volume remains")
def nothing_left(env: Environment) -> None:
    assert need(env, PodVMs).pod_vms() == [], f"pod VMs remain: {need(env, PodVMs).pod_vms()}"
    left = need(env, PodVMs).leftovers()
    assert left == [], f"left behind: {left}"


@then(parsers.parse("the pod VM's user data carries the pod's annotation at \"{path}\""))
def user_data_carries_annotation(env: Environment, world: World, path: str) -> None:
    key = world.pod()
    sent = pods.pod_annotations(world.submitted[key])[pods.INITDATA_ANNOTATION]
    files = user_data_files(env, key)
    assert files.get(path) == sent, (
        f"{path} in the user data is {files.get(path)!r}, not the pod's annotation"
    )


@then(parsers.parse('the pod VM\'s user data carries nothing at "{path}"'))
def user_data_lacks(env: Environment, world: World, path: str) -> None:
    files = user_data_files(env, world.pod())
    assert path not in files, f"the user data writes {path}: {files[path][:60]!r}"


@then(parsers.parse('the pod VM received the initdata of "{file_name}"'))
def received(env: Environment, world: World, file_name: str) -> None:
    assert_received(env, world.pod(), file_name)


@then(step("the pod VM wrote {listed:QuotedList}"))
def wrote(env: Environment, world: World, listed: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    expected = listed.strip('"').replace('" and "', '", "').split('", "')
    missing = [path for path in expected if path not in report.written]
    assert not missing, f"the pod VM did not write {missing}; it wrote {sorted(report.written)}"


@then(parsers.parse('the pod VM ignored the keys "{first}" and "{second}"'))
def ignored(env: Environment, world: World, first: str, second: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    assert {first, second} <= set(report.ignored), f"ignored keys were {report.ignored}"
    escaped = [path for path in report.written if not path.startswith(PEERPOD_DIR + "/")]
    assert not escaped, f"files written outside {PEERPOD_DIR}: {escaped}"
    for key in (first, second):
        leaf = key.rsplit("/", 1)[-1]
        leaked = [path for path in report.written if path.rsplit("/", 1)[-1] == leaf]
        assert not leaked, f"the ignored key {key!r} was written as {leaked}"


@then(parsers.parse('the pod VM\'s initdata digest is the {algorithm} digest of "{file_name}"'))
def digest_is(env: Environment, world: World, algorithm: str, file_name: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    expected = hashlib.new(algorithm, pods.initdata_toml(file_name)).hexdigest()
    assert report.algorithm == algorithm, f"the pod VM used {report.algorithm}, expected {algorithm}"
    assert report.digest == expected, (
        f"initdata.digest {report.digest} != {algorithm}({file_name}) {expected}"
    )


@then(parsers.parse('the pod VM refused the initdata with an error mentioning "{mention}"'))
def refused(env: Environment, world: World, mention: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.error, "the pod VM accepted broken initdata"
    assert mention.lower() in report.error.lower(), f"the error {report.error!r} does not mention {mention!r}"


@then("the pod VM wrote no initdata file")
def wrote_nothing(env: Environment, world: World) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    written = [p for p in report.written if p.rsplit("/", 1)[-1] in ALLOW_LISTED]
    assert not written, f"the pod VM wrote {written} from broken initdata"


@then("the pod VM received that initdata, digested with the algorithm it names")
def received_inline(env: Environment, world: World) -> None:
    toml = inline_initdata_of(world)
    algorithm = tomllib.loads(toml.decode())["algorithm"]
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.error is None, f"the pod VM refused the initdata: {report.error}"
    expected = hashlib.new(algorithm, toml).hexdigest()
    assert (report.algorithm, report.digest) == (algorithm, expected), (
        f"the pod VM digested {report.algorithm}:{report.digest}, expected {algorithm}:{expected}"
    )


@then(step('the pod VM\'s user data carries the TOML of "{file_name}", encoded again, at "{path}"'))
def user_data_carries_toml(env: Environment, world: World, file_name: str, path: str) -> None:
    files = user_data_files(env, world.pod())
    assert path in files, f"the user data writes nothing at {path}: {sorted(files)}"
    assert decoded(files[path], path) == pods.initdata_toml(file_name), (
        f"{path} does not decode to the TOML of {file_name}"
    )


@then(parsers.parse('the guest reports architecture "{arch}" and an IBM Z machine type'))
def guest_arch(env: Environment, world: World, arch: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.arch == arch, f"the guest reports architecture {report.arch!r}"
    assert IBM_Z_MACHINE.match(str(report.machine)), f"the guest reports machine {report.machine!r}"


@then(parsers.parse('the guest of pod "{name}" computed the {algorithm} digest of "{file_name}"'))
def guest_digest(env: Environment, world: World, name: str, algorithm: str, file_name: str) -> None:
    toml = pods.initdata_toml(file_name)
    assert tomllib.loads(toml.decode())["algorithm"] == algorithm, f"{file_name} does not name {algorithm}"
    report = need(env, PodVMs).guest_report(namespace_of(world, name), name)
    expected = hashlib.new(algorithm, toml).hexdigest()
    assert report.error is None, f"the guest refused the initdata: {report.error}"
    assert (report.algorithm, report.digest) == (algorithm, expected), (
        f"the guest computed {report.algorithm}:{report.digest}, expected {algorithm}:{expected}"
    )


@then(parsers.parse('the guest of pod "{name}" wrote "{path}"'))
def guest_wrote(env: Environment, world: World, name: str, path: str) -> None:
    report = need(env, PodVMs).guest_report(namespace_of(world, name), name)
    assert path in report.written, f"the guest wrote {sorted(report.written)}, not {path}"


@then(parsers.parse('the guest of pod "{name}" ignored "{key}" and wrote nothing outside /run/peerpod'))
def guest_ignored(env: Environment, world: World, name: str, key: str) -> None:
    report = need(env, PodVMs).guest_report(namespace_of(world, name), name)
    assert key in report.ignored, f"the guest ignored {report.ignored}, not {key!r}"
    outside = [p for p in report.written if not p.startswith(PEERPOD_DIR + "/") or ".." in p]
    assert not outside, f"the guest wrote outside {PEERPOD_DIR}: {outside}"


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


@then("at once the pod VM holds a DHCP lease on its network, and its port 15150 accepts there")
def forwarder_ready(env: Environment, world: World) -> None:
    """Asked right after the pod runs, without waiting: an adaptor that let the pod run before
    its pod VM was ready is caught while the guest still boots."""
    probe = need(env, PodVMNetwork).probe_forwarder(*world.pod())
    assert probe.address is not None, f"the pod runs, but its pod VM has no lease yet: {probe.problem}"
    assert probe.answer is not None, (
        f"the pod runs, but nothing accepted on {probe.address}:15150 (the agent-protocol-forwarder): "
        f"{probe.problem}"
    )


@then("the pod VM boots from its boot volume through the firmware, with no kernel handed to it")
def boots_its_image(env: Environment, world: World) -> None:
    facts = current_vm(env, world)
    assert facts["kernel"] is None, f"the domain is handed the kernel {facts['kernel']!r}"
    ordered = sorted(
        (d for d in facts["disks"] if d.get("boot_order") is not None), key=lambda d: d["boot_order"]
    )
    assert ordered, f"no disk is in the boot order: {facts['disks']}"
    first = ordered[0]
    roots = [v for v in facts["volumes"] if v.endswith("-root.qcow2")]
    assert first["format"] == "qcow2" and any(str(first["source"]).endswith("/" + v) for v in roots), (
        f"the first boot disk {first['dev']} ({first['source']}) is not the pod VM's root volume {roots}"
    )


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
