"""The Kata runtime of a worker node (``containerd-shim-kata-v2`` with the remote hypervisor).

It sits between scheduling and the cloud-api-adaptor, as upstream does: when kubelet asks
for a peer pod's sandbox, the Kata runtime first reads the pod's annotations, and only then
asks the adaptor for a pod VM (kata-containers ``src/runtime/pkg/oci/utils.go``,
``src/runtime/virtcontainers/remote.go``). Two of its steps matter to the document:

* **Initdata.** The annotation ``io.katacontainers.config.hypervisor.cc_init_data`` is
  decoded (base64, then gzip) and parsed as TOML *before* any pod VM is requested
  (``addHypervisorInitdataOverrides``). A broken annotation fails the sandbox: no pod VM
  exists and the pod never runs; kubelet shows ``FailedCreatePodSandBox`` with the runtime's
  message. What the adaptor receives is the *decoded* TOML text; the adaptor compresses and
  encodes it again (:func:`sim.peerpods.adaptor.user_data_initdata`). An empty annotation is ignored.
* **Sizing.** ``default_vcpus`` (a number, rounded up to whole vCPUs) and ``default_memory``
  (a whole number of MiB) from the pod's annotations override the runtime configuration's
  ``default_vcpus``/``default_memory``; the result is always sent to the adaptor. A value
  Kata cannot parse fails the sandbox, naming the annotation. With no configured default
  (0, upstream kata's ``configuration-remote.toml`` leaves them commented out) the adaptor
  falls back to ``LIBVIRT_CPU``/``LIBVIRT_MEMORY``; OpenShift's ``configuration-remote.toml``
  sets ``default_vcpus = 1`` and ``default_memory = 2048`` (:data:`OPENSHIFT_CONFIG`).

* **GPUs.** ``default_gpus`` is read as an unsigned decimal integer (``strconv.ParseUint``
  base 10, ``addHypervisorGPUOverrides`` / ``setUint``): ``"1"`` or ``"007"``, never
  ``"1Ki"``, ``"1k"``, ``"1e3"``, ``"500m"`` or ``" 1"``; anything else fails the sandbox,
  naming the annotation. CAA v0.22.0's webhook writes the GPU request sum with
  ``Quantity.String()``, so a request spelled ``1Ki`` or ``1e3`` gets such a value.

Upstream kata has no case for an unknown initdata algorithm (its digest switch leaves the
hash unset and the shim cannot go on); the reference refuses such a sandbox with a message
that names the algorithm.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.peerpods import initdata

__all__ = [
    "ANN_GPUS",
    "ANN_MEMORY",
    "ANN_VCPUS",
    "OPENSHIFT_CONFIG",
    "PEER_POD_HANDLER",
    "UPSTREAM_CONFIG",
    "KataConfig",
    "KataRuntime",
    "SandboxError",
    "kata_accepts_uint",
    "remote_annotations",
    "sandbox_failed",
]

ANN_PREFIX = "io.katacontainers.config.hypervisor."
ANN_VCPUS = ANN_PREFIX + "default_vcpus"
ANN_MEMORY = ANN_PREFIX + "default_memory"
ANN_GPUS = ANN_PREFIX + "default_gpus"
#: The RuntimeClass handler of Kata's remote hypervisor: a pod whose RuntimeClass has this
#: handler is a peer pod (the chart's RuntimeClass ``kata-remote`` names it).
PEER_POD_HANDLER = "kata-remote"
#: The sandbox's pod, as containerd's CRI plugin annotates every sandbox it asks Kata for.
ANN_SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
ANN_SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
#: What kubelet records when the runtime refuses to create a sandbox.
SANDBOX_FAILED = "FailedCreatePodSandBox"


class SandboxError(Exception):
    """The pod's sandbox did not start; the message reads like kubelet's event.

    ``detail`` is the runtime's error, what kubelet's ``FailedCreatePodSandBox`` event
    quotes after "Failed to create pod sandbox: " (kubernetes ``pkg/kubelet/kuberuntime/
    kuberuntime_manager.go``, ``SyncPod``). The pod stays Pending: kubelet retries.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(f"{SANDBOX_FAILED}: {detail}")
        self.detail = detail


@dataclass(frozen=True)
class KataConfig:
    """The ``[hypervisor.remote]`` defaults of ``configuration-remote.toml`` (0 = not set)."""

    default_vcpus: int = 0
    default_memory: int = 0


#: kata-containers ``src/runtime/config/configuration-remote.toml.in``: both commented out.
UPSTREAM_CONFIG = KataConfig()
#: openshift/sandboxed-containers-operator ``config/peerpods/local/configuration-remote.toml``.
OPENSHIFT_CONFIG = KataConfig(default_vcpus=1, default_memory=2048)


def sandbox_failed(pod: Mapping[str, Any], message: str) -> SandboxError:
    """The sandbox of ``pod`` did not start, because of ``message``: the runtime refused it, or
    the cloud-api-adaptor could not create or reach its pod VM (the shim's error reaches
    containerd as a failed task either way)."""
    meta = pod.get("metadata") or {}
    where = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
    return SandboxError(f"failed to create containerd task for pod {where}: {message}")


def decode_initdata(value: str) -> str:
    """The TOML text of an initdata annotation, as the runtime decodes it; raises InitdataError."""
    toml_bytes = initdata.decode(value)
    document = initdata.parse(toml_bytes, source="initdata annotation")
    return document.toml.decode("utf-8")


def _vcpus(raw: str) -> int:
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise ValueError(raw)
    return math.ceil(value)


def kata_accepts_uint(raw: str) -> bool:
    """``strconv.ParseUint(raw, 10, 64)`` succeeds: ASCII digits only, nothing around them, below 2^64."""
    return re.fullmatch(r"[0-9]+", raw, re.ASCII) is not None and int(raw) < 1 << 64


def _memory(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError(raw)
    return int(raw)


class KataRuntime:
    """One node's Kata runtime: turns a bound peer pod into the adaptor's CreateVM request."""

    def __init__(self, config: KataConfig = UPSTREAM_CONFIG) -> None:
        self.config = config

    def sandbox_request(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        """The pod as the adaptor sees it: annotations replaced by what Kata sends.

        Raises :class:`SandboxError` when the runtime refuses the sandbox.
        """
        sent = copy.deepcopy(dict(pod))
        meta = sent.setdefault("metadata", {})
        annotations: dict[str, str] = dict(meta.get("annotations") or {})
        raw = annotations.get(initdata.ANNOTATION) or ""
        if raw:
            try:
                annotations[initdata.ANNOTATION] = decode_initdata(raw)
            except initdata.InitdataError as exc:
                raise sandbox_failed(pod, f"initdata annotation {initdata.ANNOTATION}: {exc}") from None
        else:
            annotations.pop(initdata.ANNOTATION, None)
        vcpus, memory = self.config.default_vcpus, self.config.default_memory
        for key, parse in ((ANN_VCPUS, _vcpus), (ANN_MEMORY, _memory)):
            if key not in annotations:
                continue
            try:
                value = parse(str(annotations[key]).strip())
            except ValueError:
                raise sandbox_failed(
                    pod,
                    f"Error encountered parsing annotation {key}: {annotations[key]!r}, "
                    "please specify positive numeric value",
                ) from None
            if key == ANN_VCPUS:
                vcpus = value
            else:
                memory = value
        if ANN_GPUS in annotations and not kata_accepts_uint(str(annotations[ANN_GPUS])):
            raise sandbox_failed(
                pod,
                f"Error encountered parsing annotation {ANN_GPUS}: {annotations[ANN_GPUS]!r}, "
                "please specify positive numeric value",
            )
        annotations[ANN_VCPUS] = str(vcpus)
        annotations[ANN_MEMORY] = str(memory)
        meta["annotations"] = annotations
        return sent


def remote_annotations(request: Mapping[str, Any]) -> dict[str, str]:
    """The annotations of the remote hypervisor's ``CreateVM``, from :meth:`KataRuntime.sandbox_request`.

    The shim does not pass the pod's annotations through: it always sends the same nine keys,
    empty ones included -- the sandbox's name and namespace, then the hypervisor settings it
    decided: machine type, image, vCPUs and memory ("0" when nothing set them), the initdata it
    decoded, GPUs and GPU model (kata-containers ``src/runtime/virtcontainers/remote.go``,
    ``CreateVM``). The suite's Kata sets no machine type, image or GPU model.
    """
    meta = request.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return {
        ANN_SANDBOX_NAME: str(meta.get("name", "")),
        ANN_SANDBOX_NAMESPACE: str(meta.get("namespace", "default")),
        ANN_PREFIX + "machine_type": "",
        ANN_PREFIX + "image": "",
        ANN_VCPUS: str(annotations.get(ANN_VCPUS, "0")),
        ANN_MEMORY: str(annotations.get(ANN_MEMORY, "0")),
        initdata.ANNOTATION: str(annotations.get(initdata.ANNOTATION) or ""),
        ANN_PREFIX + "default_gpus": "0",
        ANN_PREFIX + "default_gpu_model": "",
    }
