"""The deployment profiles' MutatingWebhookConfigurations, shared by every target.

A profile is how peer pods are deployed: ``caa-chart`` (upstream's Helm chart) or
``openshift`` (the sandboxed containers operator). Each registers the webhook with its own
MutatingWebhookConfiguration (``fixtures/admission/<profile>-mwc.yaml``); a scenario may
override the registration's failurePolicy. Each also deploys its Kata runtime configuration
(:data:`KATA_CONFIGS`) and, for OpenShift, keeps the libvirt keys in peer-pods-secret.
The in-process targets read the webhooks (:func:`webhooks`), the cluster target registers
the documents (:func:`documents`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from sim.bounds import read_text_bounded
from sim.errors import ConformanceInputError
from sim.kube.admission import MutatingWebhook, load_webhook_configuration
from sim.paths import FIXTURES_DIR
from sim.peerpods.kata import OPENSHIFT_CONFIG, UPSTREAM_CONFIG, KataConfig
from sim.yamlload import load_all

__all__ = [
    "DEFAULT_PROFILE",
    "KATA_CONFIGS",
    "OPENSHIFT_SECRET_KEYS",
    "PROFILES",
    "documents",
    "path",
    "webhooks",
]

PROFILES: dict[str, Path] = {
    "caa-chart": FIXTURES_DIR / "admission" / "caa-chart-mwc.yaml",
    "openshift": FIXTURES_DIR / "admission" / "openshift-mwc.yaml",
}
DEFAULT_PROFILE = "caa-chart"
#: The Kata runtime configuration each profile deploys (configuration-remote.toml).
KATA_CONFIGS: dict[str, KataConfig] = {"caa-chart": UPSTREAM_CONFIG, "openshift": OPENSHIFT_CONFIG}
#: Keys OpenShift keeps in Secret peer-pods-secret instead of peer-pods-cm
#: (openshift/sandboxed-containers-operator config/peerpods/peerpodssecret.yaml).
OPENSHIFT_SECRET_KEYS = ("LIBVIRT_URI", "LIBVIRT_NET", "LIBVIRT_POOL")


def path(profile: str) -> Path:
    """The profile's MutatingWebhookConfiguration file; an unknown profile is named."""
    try:
        return PROFILES[profile]
    except KeyError:
        raise ConformanceInputError(
            f"unknown webhook profile {profile!r} (known: {', '.join(PROFILES)})"
        ) from None


def webhooks(profile: str, failure_policy: str | None = None) -> list[MutatingWebhook]:
    """The profile's webhooks, with ``failure_policy`` (``Fail``, ``Ignore``) overriding theirs."""
    source = path(profile)
    found = load_webhook_configuration(read_text_bounded(source, what="webhook profile"), source=str(source))
    if failure_policy is not None:
        found = [replace(webhook, failure_policy=failure_policy) for webhook in found]
    return found


def documents(source: Path, failure_policy: str | None = None) -> list[dict[str, Any]]:
    """The YAML documents of a MutatingWebhookConfiguration file (a profile's or the user's),
    with ``failure_policy`` overriding every webhook's, as they would be applied to a cluster."""
    text = read_text_bounded(source, what="webhook configuration")
    found = [document for document in load_all(text, source=str(source)) if document]
    if failure_policy is not None:
        for document in found:
            for webhook in document.get("webhooks") or ():
                webhook["failurePolicy"] = failure_policy
    return found
