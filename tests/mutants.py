"""Deliberately broken variants of the reference implementation, for proving the features can fail.

Loaded only by ``tests/integration/test_features_catch_faults.py`` as a pytest plugin
(``-p tests.mutants``) with ``PEERPODS_MUTANT`` naming one mutant. Each mutant is one
plausible implementation bug in one layer -- the webhook, API-server admission, the initdata
layers (Kata runtime, adaptor, pod VM), the adaptor, the scheduler, the libvirt provider,
the LPAR checks -- and names the target it runs on and the requirements it must fail.
Guest-agent (Go) mutants are source edits of ``podvm-agent/`` (:data:`AGENT_MUTANTS`),
judged by the agent's agreement with the reference pod VM.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sim.harness.targets.adaptorprocess.launcher
import sim.harness.targets.inprocess
import sim.harness.targets.lpar
import sim.kube.admission
import sim.kube.cluster
import sim.kube.nodepool
import sim.kube.podpipeline
import sim.kube.profiles
import sim.kube.scheduler
import sim.kube.selectors
import sim.lpar.domain
import sim.lpar.prerequisites
import sim.peerpods.adaptor
import sim.peerpods.adaptorservice
import sim.peerpods.kata
import sim.peerpods.podvm
import sim.peerpods.providers
import sim.peerpods.providers.libvirt
import sim.peerpods.providers.libvirt_boot
import sim.peerpods.providers.libvirt_storage
import sim.peerpods.providers.memory
import sim.peerpods.webhook
from sim.peerpods import initdata

REFERENCE = ("reference",)
LPAR = ("lpar", "--libvirt-uri", "test:///default")
#: The adaptor target's VM-007 scenarios, in the run's own isolated LPAR (root, libvirt's daemons,
#: the pod VM image): the reference adaptor is a process of its own, mutated there (IN_ADAPTOR).
ADAPTOR_VM007 = ("adaptor", "--tags", "VM-007")
#: The adaptor target's VM-014 scenario: how the reference adaptor boots its pod VMs and when it
#: counts them ready.
ADAPTOR_VM014 = ("adaptor", "--tags", "VM-014")


def _rebind(module: ModuleType, name: str, replacement: object) -> None:
    """Replace what ``module``'s code finds under ``name``: often a name it imported, which is
    not part of its typed interface. A name the module lacks is an error, so a mutant cannot
    quietly patch nothing after a rename."""
    if not hasattr(module, name):
        raise AttributeError(f"mutant: module {module.__name__} has no {name!r} to replace")
    setattr(module, name, replacement)


@dataclass(frozen=True)
class Mutant:
    """One plausible bug: where it lives, the target whose run must catch it, what it breaks."""

    area: str
    target: tuple[str, ...]
    breaks: frozenset[str]
    apply: Callable[[], None]
    doc: str


# --- webhook --------------------------------------------------------------------------------


def _webhook_blind_to_init_containers() -> None:
    original = sim.peerpods.webhook.review_response

    def blind(review: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        stripped = copy.deepcopy(review)
        pod = (stripped.get("request") or {}).get("object") or {}
        for container in (pod.get("spec") or {}).get("initContainers") or []:
            container.pop("resources", None)
        return original(stripped, *args, **kwargs)

    _rebind(sim.kube.admission, "review_response", blind)


def _webhook_prefers_requests() -> None:
    def requests_first(requests: Any, limits: Any) -> Any:
        if requests > 0:
            return requests
        return None

    sim.peerpods.webhook._size_annotation = requests_first


def _webhook_rounds_down() -> None:
    _rebind(sim.peerpods.webhook, "ceil_int", lambda value: int(value))


def _webhook_marks_every_container() -> None:
    def every(list_name: str, index: int, settings: sim.peerpods.webhook.WebhookSettings) -> dict[str, Any]:
        if list_name == "containers":
            unit = {settings.extended_resource: "1"}
            return {"requests": dict(unit), "limits": dict(unit)}
        return {}

    sim.peerpods.webhook._resources_for = every


def _webhook_keeps_init_resources() -> None:
    original = sim.peerpods.webhook._plan

    def plan(pod: object, settings: sim.peerpods.webhook.WebhookSettings) -> Any:
        result = original(pod, settings)
        counts = {k: v for k, v in result.container_counts.items() if k == "containers"}
        return dataclasses.replace(result, container_counts=counts)

    sim.peerpods.webhook._plan = plan


def _webhook_ignores_runtimeclass() -> None:
    original = sim.peerpods.webhook._plan

    def plan(pod: object, settings: sim.peerpods.webhook.WebhookSettings) -> Any:
        spec = (pod.get("spec") if isinstance(pod, dict) else None) or {}
        if isinstance(pod, dict) and isinstance(spec, dict):  # any runtime class reads as the target's
            pod = {**pod, "spec": {**spec, "runtimeClassName": settings.target_runtimeclass}}
        return original(pod, settings)

    sim.peerpods.webhook._plan = plan


def _webhook_fixed_resource_name() -> None:
    original = sim.peerpods.webhook._resources_for

    def fixed(list_name: str, index: int, settings: sim.peerpods.webhook.WebhookSettings) -> dict[str, Any]:
        return original(
            list_name, index, dataclasses.replace(settings, extended_resource="kata.peerpods.io/vm")
        )

    sim.peerpods.webhook._resources_for = fixed


def _webhook_writes_zero_annotations() -> None:
    original = sim.peerpods.webhook._annotations

    def always(pod: object, totals: Any) -> dict[str, str]:
        return {
            sim.peerpods.webhook.ANN_VCPUS: "0",
            sim.peerpods.webhook.ANN_MEMORY: "0",
            **original(pod, totals),
        }

    sim.peerpods.webhook._annotations = always


def _webhook_writes_gpus_as_a_decimal() -> None:
    """default_gpus as Python prints the sum ("1.0", "3.0"): neither upstream's string nor an integer."""
    _rebind(sim.peerpods.webhook, "quantity_string", lambda value, fmt: str(float(value)))


def _webhook_counts_pod_level_resources() -> None:
    original = sim.peerpods.webhook._annotations

    def with_pod_level(pod: object, totals: Any) -> dict[str, str]:
        spec = (pod.get("spec") if isinstance(pod, dict) else None) or {}
        requests = ((spec.get("resources") or {}).get("requests") or {}).get("cpu")
        if requests is not None:
            from decimal import Decimal

            totals.cpu_requests += Decimal(str(requests))
            totals.cpu_limits += Decimal(str(requests))
        return original(pod, totals)

    sim.peerpods.webhook._annotations = with_pod_level


def _webhook_ignores_document_profile() -> None:
    original = sim.peerpods.webhook._plan

    def plan(pod: object, settings: sim.peerpods.webhook.WebhookSettings) -> Any:
        return original(pod, dataclasses.replace(settings, annotations=True))

    sim.peerpods.webhook._plan = plan


# --- API server admission ---------------------------------------------------------------------


def _admission_ignores_namespace_selector() -> None:
    original = sim.kube.selectors.label_selector_matches

    def selector(selector: Any, labels: Mapping[str, str], *, where: str) -> bool:
        if "namespaceSelector" in where:
            return True
        return original(selector, labels, where=where)

    _rebind(sim.kube.admission, "label_selector_matches", selector)


def _admission_fails_open() -> None:
    original = sim.kube.admission._call_one

    def call(
        webhook: sim.kube.admission.MutatingWebhook,
        outcome: sim.kube.admission.AdmissionOutcome,
        caller: sim.kube.admission.WebhookCaller,
        request: dict[str, Any],
    ) -> bool:
        return original(dataclasses.replace(webhook, failure_policy="Ignore"), outcome, caller, request)

    sim.kube.admission._call_one = call


def _namespace_labels_override_name() -> None:
    original = sim.kube.cluster.Cluster.create_namespace

    def create(self: sim.kube.cluster.Cluster, name: str, labels: Mapping[str, str] | None = None) -> Any:
        result = original(self, name, labels)
        own = dict(labels or {}).get(sim.kube.cluster.NAMESPACE_NAME_LABEL)
        if own:
            self._namespaces[name]["metadata"]["labels"][sim.kube.cluster.NAMESPACE_NAME_LABEL] = own
        return result

    sim.kube.cluster.Cluster.create_namespace = create  # type: ignore[method-assign]


def _admission_never_reinvokes() -> None:
    """An API server that ignores reinvocationPolicy: IfNeeded (calls each webhook once)."""
    original = sim.kube.admission._call_one
    called: set[tuple[int, str]] = set()

    def call(
        webhook: sim.kube.admission.MutatingWebhook,
        outcome: sim.kube.admission.AdmissionOutcome,
        caller: sim.kube.admission.WebhookCaller,
        request: dict[str, Any],
    ) -> bool:
        key = (id(outcome), webhook.name)
        if key in called and webhook.name in outcome.reinvoked:
            outcome.reinvoked.remove(webhook.name)
            return True
        called.add(key)
        return original(webhook, outcome, caller, request)

    sim.kube.admission._call_one = call


def _admission_never_sends_update() -> None:
    """An API server whose rule matching knows only CREATE: UPDATE registrations are never called."""
    original = sim.kube.admission.rule_matches

    def matches(rule: Any, *, operation: str, **kwargs: Any) -> bool:
        return operation != "UPDATE" and bool(original(rule, operation=operation, **kwargs))

    sim.kube.admission.rule_matches = matches


def _policy_allows_everywhere() -> None:
    sim.kube.admission.PeerPodNamespacePolicy.denial = lambda self, pod, namespace: None  # type: ignore[method-assign]


# --- the initdata layers: Kata runtime, adaptor, pod VM ---------------------------------------------


def _kata_skips_decoding() -> None:
    def raw(self: sim.peerpods.kata.KataRuntime, pod: Mapping[str, Any]) -> dict[str, Any]:
        sent = copy.deepcopy(dict(pod))
        annotations = sent.setdefault("metadata", {}).setdefault("annotations", {})
        annotations.setdefault(sim.peerpods.kata.ANN_VCPUS, str(self.config.default_vcpus))
        annotations.setdefault(sim.peerpods.kata.ANN_MEMORY, str(self.config.default_memory))
        return sent

    sim.peerpods.kata.KataRuntime.sandbox_request = raw  # type: ignore[method-assign]


def _kata_drops_broken_annotation() -> None:
    original = sim.peerpods.kata.decode_initdata

    def forgiving(value: str) -> str:
        try:
            return original(value)
        except initdata.InitdataError:
            return ""

    sim.peerpods.kata.decode_initdata = forgiving


def _adaptor_does_not_reencode() -> None:
    def raw(annotations: Mapping[str, str], config: sim.peerpods.adaptor.AdaptorConfig) -> str | None:
        return annotations.get(initdata.ANNOTATION) or config.data.get(initdata.CM_KEY) or None

    sim.peerpods.adaptor.user_data_initdata = raw


def _config_map_beats_annotation() -> None:
    original = sim.peerpods.adaptor.user_data_initdata

    def reversed_order(
        annotations: Mapping[str, str], config: sim.peerpods.adaptor.AdaptorConfig
    ) -> str | None:
        return config.data.get(initdata.CM_KEY) or original(annotations, config)

    sim.peerpods.adaptor.user_data_initdata = reversed_order


def _adaptor_ignores_global_initdata() -> None:
    original = sim.peerpods.adaptor.user_data_initdata

    def pod_only(annotations: Mapping[str, str], config: sim.peerpods.adaptor.AdaptorConfig) -> str | None:
        return original(annotations, dataclasses.replace(config, data={}))

    sim.peerpods.adaptor.user_data_initdata = pod_only


def _adaptor_starts_with_broken_initdata() -> None:
    original = sim.peerpods.adaptor.CloudApiAdaptor.start

    def start(
        self: sim.peerpods.adaptor.CloudApiAdaptor, peer_pods_cm: Mapping[str, str] | None
    ) -> int | None:
        data = dict(peer_pods_cm or {})
        data.pop(initdata.CM_KEY, None)
        advertised = original(self, data)
        self.config = sim.peerpods.adaptor.AdaptorConfig.from_configmap(peer_pods_cm)
        return advertised

    sim.peerpods.adaptor.CloudApiAdaptor.start = start  # type: ignore[method-assign]


def _adaptor_parses_empty_initdata() -> None:
    original = sim.peerpods.adaptor.CloudApiAdaptor.start

    def start(
        self: sim.peerpods.adaptor.CloudApiAdaptor, peer_pods_cm: Mapping[str, str] | None
    ) -> int | None:
        if (peer_pods_cm or {}).get(initdata.CM_KEY) == "":  # "set" is taken to mean "set to something"
            self.config, self.start_error = None, "failed to parse global initdata: initdata is empty"
            raise sim.peerpods.adaptor.AdaptorStartError(self.start_error)
        return original(self, peer_pods_cm)

    sim.peerpods.adaptor.CloudApiAdaptor.start = start  # type: ignore[method-assign]


def _podvm_checks_version() -> None:
    def strict(doc: Mapping[str, Any], source: str) -> str:
        if doc.get("version") != "0.1.0":
            raise initdata.InitdataError(f"{source}: unknown version {doc.get('version')!r}")
        return "0.1.0"

    initdata._version = strict


def _podvm_joins_as_python() -> None:
    def apply(guest: Any, report: Any, encoded: str) -> None:
        toml_bytes = initdata.decode(encoded)
        document = initdata.parse(toml_bytes, source="initdata")
        hex_digest = initdata.digest(toml_bytes, document.algorithm)
        for key, content in document.data.items():
            path = posixpath.normpath(posixpath.join(sim.peerpods.podvm.PEERPOD_DIR, key))  # restarts at "/"
            if path in sim.peerpods.podvm._ALLOWED_PATHS:
                guest.write(path, content.encode())
            else:
                report.ignored.append(key)
        guest.write(sim.peerpods.podvm.DIGEST_PATH, hex_digest.encode())
        report.algorithm, report.digest = document.algorithm, hex_digest

    sim.peerpods.podvm._apply_initdata = apply


def _podvm_writes_any_key() -> None:
    class Everything(frozenset[str]):
        def __contains__(self, path: object) -> bool:
            return isinstance(path, str) and path.startswith(sim.peerpods.podvm.PEERPOD_DIR + "/")

    sim.peerpods.podvm._ALLOWED_PATHS = Everything()


def _podvm_always_sha256() -> None:
    sim.peerpods.podvm.initdata_mod.digest = lambda toml, algorithm=None: hashlib.sha256(toml).hexdigest()  # type: ignore[attr-defined]


def _podvm_no_default_initdata() -> None:
    fixed = initdata.encode(b'algorithm = "sha384"\nversion = "0.1.0"\n')
    sim.peerpods.podvm.initdata_mod.DUMMY_ENCODED = fixed  # type: ignore[attr-defined]


# --- the adaptor ---------------------------------------------------------------------------------


def _adaptor_ignores_limit() -> None:
    original = sim.peerpods.adaptor.CloudApiAdaptor.start

    def fixed(
        self: sim.peerpods.adaptor.CloudApiAdaptor, peer_pods_cm: Mapping[str, str] | None
    ) -> int | None:
        original(self, peer_pods_cm)
        return 10

    sim.peerpods.adaptor.CloudApiAdaptor.start = fixed  # type: ignore[method-assign]


def _adaptor_zero_advertises_nothing() -> None:
    sim.peerpods.adaptor.AdaptorConfig.advertised = property(  # type: ignore[method-assign,assignment]
        lambda self: None if self.limit <= 0 else self.limit
    )


def _negative_limit_advertises_zero() -> None:
    sim.peerpods.adaptor.AdaptorConfig.advertised = property(  # type: ignore[method-assign,assignment]
        lambda self: max(self.limit, 0)
    )


def _adaptor_advertises_the_webhooks_name() -> None:
    original = sim.harness.targets.inprocess.InProcessEnvironment.set_webhook_env

    def set_env(self: Any, name: str, value: str) -> None:
        original(self, name, value)
        if name == "POD_VM_EXTENDED_RESOURCE":
            sim.peerpods.adaptor.CloudApiAdaptor.resource = value  # every adaptor, including later ones
            for node in self._cluster.nodes():
                pool = self._cluster.nodepool
                pool.advertise(node, pool.adaptor(node).config.advertised)

    sim.harness.targets.inprocess.InProcessEnvironment.set_webhook_env = set_env  # type: ignore[method-assign]


def _adaptor_reads_config_live() -> None:
    original = sim.kube.cluster.Cluster.apply_configmap

    def apply(self: sim.kube.cluster.Cluster, obj: Mapping[str, Any]) -> None:
        original(self, obj)
        if self.nodes():
            self.restart_adaptors()

    sim.kube.cluster.Cluster.apply_configmap = apply  # type: ignore[method-assign]


def _adaptor_ignores_annotations() -> None:
    sim.peerpods.adaptor._annotation_int = lambda annotations, key: None


def _kata_ignores_its_configuration() -> None:
    sim.kube.profiles.KATA_CONFIGS["openshift"] = sim.peerpods.kata.UPSTREAM_CONFIG


# --- the scheduler ---------------------------------------------------------------------------------


def _scheduler_ignores_extended_resource() -> None:
    original = sim.kube.scheduler.effective_request

    def without(pod: Mapping[str, Any]) -> dict[str, int]:
        return {k: v for k, v in original(pod).items() if k != "kata.peerpods.io/vm"}

    _rebind(sim.kube.podpipeline, "effective_request", without)


def _scheduler_never_frees() -> None:
    sim.kube.scheduler.Scheduler.release = lambda self, key: None  # type: ignore[method-assign]


def _sandbox_failure_fails_the_pod() -> None:
    """A sandbox that did not start marks the pod Failed and frees its unit (kubelet keeps it Pending)."""
    original = sim.kube.nodepool.NodePool.start_pod

    def start_pod(
        self: sim.kube.nodepool.NodePool,
        node: str,
        key: tuple[str, str],
        state: Any,
        kata: Any,
        *,
        peer_pod: bool,
    ) -> None:
        original(self, node, key, state, kata, peer_pod=peer_pod)
        if state.phase == "Pending" and (state.reason or "").startswith("FailedCreatePodSandBox"):
            self.scheduler.release(key)
            state.phase = "Failed"
            state.pod["status"] = {"phase": "Failed", "message": state.reason}

    sim.kube.nodepool.NodePool.start_pod = start_pod  # type: ignore[method-assign]


def _scheduler_ignores_overhead() -> None:
    original = sim.kube.scheduler.effective_request

    def no_overhead(pod: Mapping[str, Any]) -> dict[str, int]:
        stripped = copy.deepcopy(dict(pod))
        (stripped.get("spec") or {}).pop("overhead", None)
        return original(stripped)

    _rebind(sim.kube.podpipeline, "effective_request", no_overhead)


def _scheduler_charges_every_peer_pod() -> None:
    original = sim.kube.scheduler.effective_request

    def charged(pod: Mapping[str, Any]) -> dict[str, int]:
        request = original(pod)
        if (pod.get("spec") or {}).get("runtimeClassName") == "kata-remote":
            request["kata.peerpods.io/vm"] = max(request.get("kata.peerpods.io/vm", 0), 1)
        return request

    _rebind(sim.kube.podpipeline, "effective_request", charged)


# --- the libvirt provider ---------------------------------------------------------------------------


def _domain_xml(edit: Callable[[str], str]) -> None:
    original = sim.lpar.domain.build_domain_xml
    sim.lpar.domain.build_domain_xml = lambda spec: edit(original(spec))


def _provider_emits_launch_security() -> None:
    original = sim.lpar.domain.build_domain_xml

    def build(spec: sim.lpar.domain.DomainSpec) -> str:
        return original(dataclasses.replace(spec, launch_security="s390-pv"))

    sim.lpar.domain.build_domain_xml = build


def _provider_cvm_by_default() -> None:
    original = sim.peerpods.providers.libvirt.LibvirtSettings.from_config

    def from_config(data: Mapping[str, str]) -> sim.peerpods.providers.libvirt.LibvirtSettings:
        settings = original(data)
        wanted = (data.get("DISABLECVM") or "").strip().lower() in ("1", "t", "true")
        return dataclasses.replace(settings, disable_cvm=wanted)

    sim.peerpods.providers.libvirt.LibvirtSettings.from_config = from_config  # type: ignore[method-assign]


def _provider_does_not_truncate() -> None:
    def untruncated(pod_name: str, sandbox_id: str, max_length: int = 63) -> str:
        return sim.peerpods.providers._NOT_NAME.sub("-", f"podvm-{pod_name}-{sandbox_id[:8]}".lower())

    _rebind(sim.peerpods.providers.libvirt, "podvm_name", untruncated)


def _provider_base_sized_root() -> None:
    def root_xml(self: Any, name: str, base: Any) -> str:
        return (
            f"<volume><name>{name}</name><capacity unit='B'>{int(base.info()[1])}</capacity>"
            "<target><format type='qcow2'/></target>"
            f"<backingStore><path>{base.path()}</path><format type='qcow2'/></backingStore></volume>"
        )

    sim.peerpods.providers.libvirt_storage.LibvirtStorage.root_volume_xml = root_xml  # type: ignore[method-assign]


def _provider_leaves_volumes() -> None:
    sim.peerpods.providers.libvirt_storage.Undo.run = lambda self: []  # type: ignore[method-assign]


def _provider_keeps_volumes_on_delete() -> None:
    sim.peerpods.providers.libvirt_storage.LibvirtStorage.delete_volume = lambda self, pool, name: None  # type: ignore[method-assign]


#: Mutations applied inside the reference adaptor's process (``adaptor serve``), by mutant name.
IN_ADAPTOR: dict[str, Callable[[], None]] = {}
ROOT = Path(__file__).resolve().parents[1]
#: ``python -c`` in the adaptor's process: apply the mutant named by the first argument, then serve.
_ADAPTOR_BOOT = (
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.mutants import IN_ADAPTOR; "
    "IN_ADAPTOR[sys.argv.pop(1)](); from sim.harness.cli import console_script; console_script()"
)


def _in_the_adaptor(name: str, mutate: Callable[[], None]) -> Callable[[], None]:
    """The mutant lives in the reference adaptor's own process: the launcher starts ``adaptor
    serve`` through :data:`_ADAPTOR_BOOT`, which applies ``mutate`` there first."""
    IN_ADAPTOR[name] = mutate
    launcher = sim.harness.targets.adaptorprocess.launcher.AdaptorLauncher

    def apply() -> None:
        original = launcher.argv

        def argv(self: Any, environment: Mapping[str, str], socket: Path, pods_dir: Path) -> list[str]:
            command: Sequence[str] = original(self, environment, socket, pods_dir)
            if self.binary is not None or list(command[1:3]) != ["-m", "sim"]:
                raise AssertionError(f"mutant {name}: not the reference adaptor's command: {command}")
            return [command[0], "-c", _ADAPTOR_BOOT, name, *command[3:]]

        launcher.argv = argv  # type: ignore[method-assign]

    apply.__doc__ = mutate.__doc__
    return apply


def _adaptor_leaves_root_volume() -> None:
    """The adaptor undoes a half-made pod VM but forgets its root volume (upstream's leftover)."""
    original = sim.peerpods.providers.libvirt_storage.Undo.run

    def run(self: sim.peerpods.providers.libvirt_storage.Undo) -> list[str]:
        self.actions = [(what, action) for what, action in self.actions if not what.endswith("-root.qcow2")]
        return original(self)

    sim.peerpods.providers.libvirt_storage.Undo.run = run  # type: ignore[method-assign]


def _adaptor_boots_kernel_directly() -> None:
    """The adaptor hands its pod VMs the kernel (the lpar target's emulation), not CAA's disk boot."""
    original = sim.peerpods.providers.libvirt_boot.GuestBoot.__init__

    def init(self: sim.peerpods.providers.libvirt_boot.GuestBoot, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **{**kwargs, "from_volume": False})

    sim.peerpods.providers.libvirt_boot.GuestBoot.__init__ = init  # type: ignore[method-assign]


def _adaptor_ready_at_start() -> None:
    """StartVM answers once the domain is started, not once the pod VM is leased and listening."""
    original = sim.peerpods.adaptorservice.HypervisorService.__init__

    def init(self: sim.peerpods.adaptorservice.HypervisorService, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._wait_ready = None

    sim.peerpods.adaptorservice.HypervisorService.__init__ = init  # type: ignore[method-assign]


def _adaptor_ignores_secret() -> None:
    """The adaptor's environment is peer-pods-cm alone: envFrom's secretRef forgotten."""

    def configmap_only(self: sim.kube.cluster.Cluster) -> dict[str, str]:
        found = self._configmaps.get((self.caa_namespace, sim.kube.cluster.PEER_PODS_CM))
        return dict((found or {}).get("data") or {})

    sim.kube.cluster.Cluster._peer_pods_data = configmap_only  # type: ignore[method-assign]


def _adaptor_starts_without_its_pool() -> None:
    """The adaptor does not look its libvirt pool up when it starts (CAA's NewLibvirtClient does)."""
    sim.peerpods.providers.libvirt.LibvirtProvider.check_start = lambda self, data: None  # type: ignore[method-assign]


def _provider_serial_console() -> None:
    _domain_xml(lambda xml: xml.replace('type="sclp"', 'type="serial"'))


def _provider_raw_boot_disk() -> None:
    _domain_xml(lambda xml: xml.replace('type="qcow2"', 'type="raw"', 1))


def _provider_unknown_launch_security_accepted() -> None:
    _rebind(sim.peerpods.providers.libvirt, "LAUNCH_SECURITY_VALUES", ("s390-pv", "sev-snp", "tdx"))


# --- the LPAR prerequisites --------------------------------------------------------------------------


def _lpar_accepts_z15() -> None:
    sim.lpar.prerequisites.MINIMUM_RANK = 15


def _lpar_refuses_emperor4() -> None:
    sim.lpar.prerequisites.MINIMUM_RANK = 17


def _lpar_ignores_prot_virt() -> None:
    original = sim.lpar.prerequisites.check_secure_unpack

    def lenient(evidence: Any) -> Any:
        return dataclasses.replace(original(evidence), satisfied=True)

    sim.lpar.prerequisites.check_secure_unpack = lenient


def _lpar_unknown_is_later() -> None:
    sim.lpar.prerequisites.MACHINES["9999"] = (99, "a machine from the future")


def _m(area: str, target: tuple[str, ...], breaks: str, apply: Callable[[], None]) -> Mutant:
    return Mutant(
        area, target, frozenset(breaks.split()), apply, (apply.__doc__ or apply.__name__).strip("_")
    )


MUTANTS: dict[str, Mutant] = {
    # webhook
    "webhook-blind-to-init-containers": _m("webhook", REFERENCE, "WH-009", _webhook_blind_to_init_containers),
    "webhook-prefers-requests": _m("webhook", REFERENCE, "WH-006 WH-007", _webhook_prefers_requests),
    "webhook-rounds-down": _m("webhook", REFERENCE, "WH-006", _webhook_rounds_down),
    "webhook-marks-every-container": _m("webhook", REFERENCE, "WH-004", _webhook_marks_every_container),
    "webhook-keeps-init-resources": _m("webhook", REFERENCE, "WH-003", _webhook_keeps_init_resources),
    "webhook-ignores-runtimeclass": _m("webhook", REFERENCE, "WH-001 WH-002", _webhook_ignores_runtimeclass),
    "webhook-fixed-resource-name": _m("webhook", REFERENCE, "WH-005", _webhook_fixed_resource_name),
    "webhook-writes-zero-annotations": _m("webhook", REFERENCE, "WH-012", _webhook_writes_zero_annotations),
    "webhook-counts-pod-level": _m("webhook", REFERENCE, "WH-013", _webhook_counts_pod_level_resources),
    "webhook-ignores-document-profile": _m("webhook", REFERENCE, "WH-010", _webhook_ignores_document_profile),
    "webhook-gpu-blind": _m(
        "webhook", REFERENCE, "WH-008", lambda: setattr(sim.peerpods.webhook, "ANN_GPUS", "io.example/gpus")
    ),
    "webhook-gpus-as-decimal": _m("webhook", REFERENCE, "WH-008 WH-023", _webhook_writes_gpus_as_a_decimal),
    # API server admission
    "admission-ignores-namespace-selector": _m(
        "admission", REFERENCE, "NS-001 NS-002", _admission_ignores_namespace_selector
    ),
    "admission-fails-open": _m("admission", REFERENCE, "NS-006", _admission_fails_open),
    "namespace-labels-override-name": _m("admission", REFERENCE, "NS-003", _namespace_labels_override_name),
    "policy-allows-everywhere": _m("admission", REFERENCE, "NS-005", _policy_allows_everywhere),
    "admission-never-reinvokes": _m("admission", REFERENCE, "WH-020", _admission_never_reinvokes),
    "admission-never-sends-update": _m("admission", REFERENCE, "WH-021", _admission_never_sends_update),
    # initdata: Kata runtime, adaptor, pod VM
    "kata-skips-decoding": _m("initdata/kata", REFERENCE, "ID-007", _kata_skips_decoding),
    "kata-drops-broken-annotation": _m("initdata/kata", REFERENCE, "ID-007", _kata_drops_broken_annotation),
    "adaptor-does-not-reencode": _m(
        "initdata/adaptor", REFERENCE, "ID-001 ID-004", _adaptor_does_not_reencode
    ),
    "config-map-beats-annotation": _m("initdata/adaptor", REFERENCE, "ID-001", _config_map_beats_annotation),
    "adaptor-ignores-global-initdata": _m(
        "initdata/adaptor", REFERENCE, "ID-002", _adaptor_ignores_global_initdata
    ),
    "adaptor-starts-with-broken-initdata": _m(
        "initdata/adaptor", REFERENCE, "ID-008", _adaptor_starts_with_broken_initdata
    ),
    "adaptor-parses-empty-initdata": _m(
        "initdata/adaptor", REFERENCE, "ID-003", _adaptor_parses_empty_initdata
    ),
    "podvm-checks-version": _m("initdata/podvm", REFERENCE, "ID-009", _podvm_checks_version),
    "podvm-joins-as-python": _m("initdata/podvm", REFERENCE, "ID-010", _podvm_joins_as_python),
    "podvm-writes-any-key": _m("initdata/podvm", REFERENCE, "ID-005", _podvm_writes_any_key),
    "podvm-always-sha256": _m("initdata/podvm", REFERENCE, "ID-006", _podvm_always_sha256),
    "podvm-wrong-default-initdata": _m("initdata/podvm", REFERENCE, "ID-003", _podvm_no_default_initdata),
    # adaptor
    "adaptor-ignores-limit": _m("adaptor", REFERENCE, "NL-001 NL-002 NL-005", _adaptor_ignores_limit),
    "adaptor-zero-advertises-nothing": _m("adaptor", REFERENCE, "NL-008", _adaptor_zero_advertises_nothing),
    "negative-limit-advertises-zero": _m(
        "adaptor", REFERENCE, "NL-005 NL-008", _negative_limit_advertises_zero
    ),
    "adaptor-advertises-webhooks-name": _m(
        "adaptor", REFERENCE, "NL-009", _adaptor_advertises_the_webhooks_name
    ),
    "adaptor-reads-config-live": _m("adaptor", REFERENCE, "NL-006", _adaptor_reads_config_live),
    "adaptor-ignores-annotations": _m("adaptor", REFERENCE, "VM-011", _adaptor_ignores_annotations),
    "kata-ignores-openshift-config": _m(
        "initdata/kata", REFERENCE, "VM-011", _kata_ignores_its_configuration
    ),
    # scheduler
    "scheduler-ignores-extended-resource": _m(
        "scheduler", REFERENCE, "NL-002 NL-004", _scheduler_ignores_extended_resource
    ),
    "scheduler-never-frees": _m("scheduler", REFERENCE, "NL-003", _scheduler_never_frees),
    "scheduler-ignores-overhead": _m("scheduler", REFERENCE, "NL-007", _scheduler_ignores_overhead),
    "scheduler-charges-every-peer-pod": _m(
        "scheduler", REFERENCE, "NS-004", _scheduler_charges_every_peer_pod
    ),
    # libvirt provider (lpar target on test:///default)
    "provider-emits-launch-security": _m("provider", LPAR, "VM-005", _provider_emits_launch_security),
    "sandbox-failure-fails-the-pod": _m("kubelet", LPAR, "VM-005 ID-007", _sandbox_failure_fails_the_pod),
    "provider-cvm-by-default": _m("provider", LPAR, "VM-005", _provider_cvm_by_default),
    "provider-accepts-unknown-launch-security": _m(
        "provider", LPAR, "VM-005", _provider_unknown_launch_security_accepted
    ),
    "provider-does-not-truncate": _m("provider", LPAR, "VM-001", _provider_does_not_truncate),
    "provider-base-sized-root": _m("provider", LPAR, "VM-009", _provider_base_sized_root),
    "provider-leaves-volumes": _m("provider", LPAR, "VM-007", _provider_leaves_volumes),
    "provider-keeps-volumes-on-delete": _m("provider", LPAR, "VM-006", _provider_keeps_volumes_on_delete),
    "adaptor-ignores-secret": _m("adaptor", LPAR, "VM-012", _adaptor_ignores_secret),
    "adaptor-starts-without-its-pool": _m("adaptor", LPAR, "VM-012", _adaptor_starts_without_its_pool),
    "provider-serial-console": _m("provider", LPAR, "VM-002", _provider_serial_console),
    "provider-raw-boot-disk": _m("provider", LPAR, "VM-003", _provider_raw_boot_disk),
    "adaptor-ignores-annotations-on-lpar": _m("adaptor", LPAR, "VM-004", _adaptor_ignores_annotations),
    # the reference adaptor as a process (adaptor target), libvirt failing through the LPAR's fault layer
    "adaptor-leaves-root-volume": _m(
        "adaptor",
        ADAPTOR_VM007,
        "VM-007",
        _in_the_adaptor("adaptor-leaves-root-volume", _adaptor_leaves_root_volume),
    ),
    "adaptor-boots-kernel-directly": _m(
        "adaptor",
        ADAPTOR_VM014,
        "VM-014",
        _in_the_adaptor("adaptor-boots-kernel-directly", _adaptor_boots_kernel_directly),
    ),
    "adaptor-ready-at-start": _m(
        "adaptor", ADAPTOR_VM014, "VM-014", _in_the_adaptor("adaptor-ready-at-start", _adaptor_ready_at_start)
    ),
    # LPAR prerequisites
    "lpar-accepts-z15": _m("lpar", LPAR, "LP-002", _lpar_accepts_z15),
    "lpar-refuses-emperor4": _m("lpar", LPAR, "LP-001", _lpar_refuses_emperor4),
    "lpar-ignores-prot-virt": _m("lpar", LPAR, "LP-003", _lpar_ignores_prot_virt),
    "lpar-unknown-is-later": _m("lpar", LPAR, "LP-005", _lpar_unknown_is_later),
}

#: Guest agent (Go) mutants: (file in podvm-agent/, text, replacement, what it breaks). Judged
#: by the agent's agreement with the reference pod VM (tests/unit/test_lpar_agent.py's cases).
AGENT_MUTANTS: dict[str, tuple[str, str, str, str]] = {
    "agent-joins-as-python": (
        "userdata.go",
        "target := path.Join(PeerpodDir, key)",
        'target := key\n\t\tif !strings.HasPrefix(key, "/") {\n'
        "\t\t\ttarget = path.Join(PeerpodDir, key)\n\t\t}",
        "ID-010",
    ),
    "agent-always-sha256": (
        "userdata.go",
        'case "sha384":\n\t\treturn sha512.New384()',
        'case "sha384":\n\t\treturn sha256.New()',
        "GI-002",
    ),
    "agent-writes-any-key": (
        "userdata.go",
        "if !allowedPath(target) {",
        'if !strings.HasPrefix(target, PeerpodDir+"/") {',
        "GI-004",
    ),
    "agent-writes-any-peerpod-file": (
        "userdata.go",
        "if !oneOf(file.Path, WriteFilesAllowed) {",
        "if path.Dir(file.Path) != PeerpodDir {",
        "CAA's write_files list (WriteFilesList; no requirement: the adaptor sends only listed files)",
    ),
}

#: MUST requirements no mutant run here can kill, and why (the test checks this list is exact).
UNREACHABLE: dict[str, str] = {
    "WH-011": "on the reference the API server refuses an unparsable quantity before any webhook; "
    "the webhook's own refusal is judged on the webhook target",
    "GI-001": "needs a booting s390x guest (qemu:///system)",
    "GI-002": "needs a booting s390x guest; the agent mutants reach it through tests/unit/test_lpar_agent.py",
    "GI-003": "needs a booting s390x guest (qemu:///system)",
    "GI-004": "needs a booting s390x guest; the agent mutants reach it through tests/unit/test_lpar_agent.py",
    "GI-005": "needs a booting s390x guest (qemu:///system)",
}


def pytest_configure(config: pytest.Config) -> None:
    name = os.environ.get("PEERPODS_MUTANT", "")
    if name not in MUTANTS:
        raise pytest.UsageError(f"PEERPODS_MUTANT={name!r}: expected one of {', '.join(MUTANTS)}")
    MUTANTS[name].apply()
