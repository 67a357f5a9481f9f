"""Peer pods as deployed on a cluster: ConfigMap ``peer-pods-cm`` and Secret ``peer-pods-secret``.

Stands for what the CAA Helm chart or the OpenShift sandboxed containers operator installs
for the cloud-api-adaptor, and for what a scenario changes in it. Not a target: every
environment that runs adaptors (in process, on an LPAR, through an API server) keeps one.

* the defaults are the fixture ``fixtures/cluster/peer-pods-cm.yaml``, less the keys a
  scenario decides itself (:data:`SCENARIO_KEYS`);
* a scenario's keys override the defaults (:meth:`PeerPodsDeployment.set_configmap`,
  :meth:`PeerPodsDeployment.set_secret`);
* the ``openshift`` profile keeps the libvirt connection keys in the Secret instead of the
  ConfigMap (:data:`sim.kube.profiles.OPENSHIFT_SECRET_KEYS`);
* the adaptor's process environment is the Secret, then the ConfigMap: upstream's
  cloud-api-adaptor DaemonSet lists them in that order under ``envFrom``, so a key in both
  takes the ConfigMap's value (:meth:`PeerPodsDeployment.adaptor_environment`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sim.bounds import read_text_bounded
from sim.kube import profiles
from sim.paths import FIXTURES_DIR
from sim.yamlload import load_one

PEER_PODS_CM = FIXTURES_DIR / "cluster" / "peer-pods-cm.yaml"
SECRET_NAME = "peer-pods-secret"
#: Keys a scenario decides itself; the fixture's values for them are not defaults.
SCENARIO_KEYS = ("PEERPODS_LIMIT_PER_NODE", "INITDATA")


def _fixture_configmap() -> dict[str, Any]:
    text = read_text_bounded(PEER_PODS_CM, what="fixture")
    document: dict[str, Any] = load_one(text, source=str(PEER_PODS_CM))
    return document


class PeerPodsDeployment:
    """peer-pods-cm and peer-pods-secret: the defaults, the profile and one scenario's keys."""

    def __init__(self) -> None:
        self._manifest = _fixture_configmap()
        data = self._manifest.get("data") or {}
        self._cm_defaults: dict[str, str] = {k: str(v) for k, v in data.items() if k not in SCENARIO_KEYS}
        self._secret_defaults: dict[str, str] = {}
        self._cm: dict[str, str] = {}
        self._secret: dict[str, str] = {}

    @property
    def configmap_name(self) -> str:
        return str(self._manifest["metadata"]["name"])

    def use_profile(self, profile: str) -> None:
        """Deploy as ``profile`` does: OpenShift moves the libvirt connection keys to the Secret."""
        if profile != "openshift":
            return
        for key in profiles.OPENSHIFT_SECRET_KEYS:
            if key in self._cm_defaults:
                self._secret_defaults[key] = self._cm_defaults.pop(key)

    @property
    def configmap_overrides(self) -> dict[str, str]:
        """The peer-pods-cm keys the scenario set."""
        return dict(self._cm)

    @property
    def secret_overrides(self) -> dict[str, str]:
        """The peer-pods-secret keys the scenario set."""
        return dict(self._secret)

    def set_configmap(self, data: Mapping[str, str]) -> None:
        """The scenario's peer-pods-cm keys (replacing the ones it set before)."""
        self._cm = dict(data)

    def set_secret(self, data: Mapping[str, str]) -> None:
        """The scenario's peer-pods-secret keys (replacing the ones it set before)."""
        self._secret = dict(data)

    def configmap_data(self) -> dict[str, str]:
        """peer-pods-cm's data: the defaults, then the scenario's keys."""
        return {**self._cm_defaults, **self._cm}

    def secret_data(self) -> dict[str, str]:
        """peer-pods-secret's data: the profile's keys, then the scenario's."""
        return {**self._secret_defaults, **self._secret}

    def configmap(self) -> dict[str, Any]:
        """ConfigMap peer-pods-cm as it is applied."""
        manifest = copy.deepcopy(self._manifest)
        manifest["data"] = self.configmap_data()
        return manifest

    def secret(self) -> dict[str, Any]:
        """Secret peer-pods-secret as it is applied."""
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME},
            "stringData": self.secret_data(),
        }

    def adaptor_environment(self) -> dict[str, str]:
        """The adaptor's process environment: the Secret, then the ConfigMap (envFrom order)."""
        return {**self.secret_data(), **self.configmap_data()}

    def provider_environment(self, host_keys: Mapping[str, str]) -> dict[str, str]:
        """What a pod VM provider on a given host reads: the adaptor's environment with the keys
        the host needs (``host_keys``), which a key the scenario set itself still overrides."""
        return {**self.adaptor_environment(), **host_keys, **self._secret, **self._cm}
