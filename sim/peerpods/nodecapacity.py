"""What an adaptor process does to its own Node: advertise the pod VM limit, withdraw it at exit.

CAA's ``pkg/adaptor/k8sops/node.go`` (``AdvertiseExtendedResources``,
``RemoveExtendedResources``), called by ``pkg/adaptor/server.go``:

* An adaptor is in Kubernetes when ``NODE_NAME`` is set (``IsKubernetesEnvironment``); the
  chart's DaemonSet sets it from ``spec.nodeName``.
* When it starts, before it serves the shim, it patches its Node's status with one JSON patch,
  ``add /status/capacity/kata.peerpods.io~1vm`` = the limit as text. A negative limit patches
  nothing. A failed patch ends the adaptor's start (the process exits).
* When it stops, it sends ``remove`` on the same path, whatever it advertised; a failure is
  ignored.
* It reaches the API server with the in-cluster configuration (client-go's
  ``rest.InClusterConfig``): ``KUBERNETES_SERVICE_HOST``/``_PORT`` and the service account's
  token and CA under ``/var/run/secrets/kubernetes.io/serviceaccount/``.

The reference adaptor (``peerpods-conformance adaptor serve``) does the same through the
Kubernetes Python client's in-cluster loader, which reads the same variables and files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.peerpods.adaptor import ADVERTISED_RESOURCE

__all__ = ["ADVERTISED_RESOURCE", "NODE_NAME_KEY", "NodePatchError", "advertise", "node_name", "withdraw"]

NODE_NAME_KEY = "NODE_NAME"


class NodePatchError(Exception):
    """The adaptor could not patch its Node; the message names the node and the API's answer."""


def node_name(environment: Mapping[str, str]) -> str | None:
    """The adaptor's node, when it runs in Kubernetes (``NODE_NAME`` set and not empty)."""
    return environment.get(NODE_NAME_KEY) or None


def _path() -> str:
    return "/status/capacity/" + ADVERTISED_RESOURCE.replace("~", "~0").replace("/", "~1")


def _core() -> Any:
    import kubernetes.client as kube_client
    import kubernetes.config as _kube_config

    kube_config: Any = _kube_config

    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException as exc:
        raise NodePatchError(f"failed to get k8s config: {exc}") from None
    return kube_client.CoreV1Api()


def advertise(node: str, limit: int | None) -> None:
    """CAA's ``AdvertiseExtendedResources``: ``limit`` None (negative) patches nothing."""
    if limit is None:
        return
    from kubernetes.client.exceptions import ApiException

    core = _core()
    try:
        core.patch_node_status(node, [{"op": "add", "path": _path(), "value": str(limit)}])
    except ApiException as exc:
        raise NodePatchError(
            f"failed to set extended resource {ADVERTISED_RESOURCE} for node {node}: "
            f"{exc.status} {exc.reason}: {(exc.body or '').strip()[:300]}"
        ) from None
    except OSError as exc:  # the API server does not answer
        raise NodePatchError(f"failed to set extended resource for node {node}: {exc}") from None
    finally:
        core.api_client.close()


def withdraw(node: str) -> str | None:
    """CAA's ``RemoveExtendedResources`` at exit: best effort; what went wrong, if anything."""
    from kubernetes.client.exceptions import ApiException

    try:
        core = _core()
    except NodePatchError as exc:
        return str(exc)
    try:
        core.patch_node_status(node, [{"op": "remove", "path": _path()}])
    except (ApiException, OSError) as exc:
        return f"failed to remove extended resource for node {node}: {exc}"
    finally:
        core.api_client.close()
    return None
