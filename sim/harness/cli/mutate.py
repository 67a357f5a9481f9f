"""``peerpods-conformance mutate``: show what the reference webhook does to a pod manifest.

Useful to check a manifest before applying it to a cluster, and as the oracle when a real
webhook's answer looks wrong. Settings come from the same environment variables the CAA
webhook reads (TARGET_RUNTIMECLASS, POD_VM_EXTENDED_RESOURCE); flags win over them.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import yaml

from sim.bounds import MAX_MANIFEST_BYTES, read_bounded, short
from sim.errors import ConformanceInputError
from sim.harness.cli.helptext import plain_doc
from sim.jsonescapes import loads_keeping_numbers
from sim.peerpods.webhook import (
    ENV_EXTENDED_RESOURCE,
    ENV_TARGET_RUNTIMECLASS,
    EXTENDED_RESOURCE_DEFAULT,
    TARGET_RUNTIMECLASS_DEFAULT,
    WebhookSettings,
    mutate_pod,
)
from sim.podquantities import escaped_quantity
from sim.yamlload import load_all

__all__ = ["load_pod", "read_source", "register"]


def read_source(source: str, *, what: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """Bytes of FILE, or of stdin for '-', at most ``limit`` (checked before parsing)."""
    return read_bounded(source, what=what, limit=limit)


def _json_document(data: bytes, label: str) -> list[Any] | None:
    """A JSON manifest as Go's decoder reads it (None: not JSON, left to the YAML loader).

    Go reads a quantity from its raw bytes: one spelled with an escape (``"\\u0031"``) is
    refused, and a number keeps the text it was written in (``1e3``, see sim.jsonescapes).
    """
    if data.lstrip()[:1] != b"{":
        return None
    try:
        document = loads_keeping_numbers(data)
        escaped = escaped_quantity(data) if isinstance(document, dict) else None
    except (ValueError, RecursionError):
        return None  # the YAML loader names the problem (or the nesting bound)
    if escaped is not None:
        raise ConformanceInputError(f"{label}: {escaped}")
    return [document]


def load_pod(data: bytes, *, source: str) -> dict[str, Any]:
    """Exactly one YAML (or JSON) document, and it must be a v1 Pod."""
    label = "stdin" if source == "-" else source
    documents = _json_document(data, label)
    if documents is None:
        documents = load_all(data, source=label)
    if len(documents) != 1:
        raise ConformanceInputError(
            f"{label}: expected exactly one YAML document (a Pod), found {len(documents)}"
        )
    pod = documents[0]
    if not isinstance(pod, dict):
        raise ConformanceInputError(f"{label}: expected a Pod object, found a YAML {type(pod).__name__}")
    kind, api_version = pod.get("kind"), pod.get("apiVersion")
    if kind != "Pod" or api_version != "v1":
        raise ConformanceInputError(
            f"{label}: expected apiVersion v1, kind Pod; found {short(api_version)}/{short(kind)}"
        )
    return pod


def _settings(args: argparse.Namespace) -> WebhookSettings:
    """Environment first, then the flags that were given."""
    return WebhookSettings.resolve(
        os.environ,
        target_runtimeclass=args.runtimeclass,
        extended_resource=args.extended_resource,
        annotations=False if args.no_annotations else None,
    )


def _handle(args: argparse.Namespace) -> int:
    pod = load_pod(read_source(args.pod, what="pod manifest"), source=args.pod)
    settings = _settings(args)
    mutated = mutate_pod(pod, settings)
    runtime_class = (pod.get("spec") or {}).get("runtimeClassName")
    if runtime_class != settings.target_runtimeclass:
        print(
            f"note: runtimeClassName is {runtime_class!r}, not {settings.target_runtimeclass!r}; "
            "the webhook leaves this pod unchanged",
            file=sys.stderr,
        )
    sys.stdout.write(yaml.safe_dump(mutated, sort_keys=False, default_flow_style=False))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``mutate`` sub-command."""
    parser = subparsers.add_parser(
        "mutate",
        help="print a pod as the reference peer-pods webhook would mutate it",
        description=plain_doc(__doc__),
    )
    parser.add_argument("pod", metavar="POD.yaml", help="pod manifest, or '-' for stdin")
    parser.add_argument(
        "--runtimeclass",
        help=f"runtime class to act on (env {ENV_TARGET_RUNTIMECLASS}, "
        f"default {TARGET_RUNTIMECLASS_DEFAULT})",
    )
    parser.add_argument(
        "--extended-resource",
        help=f"pod VM extended resource (env {ENV_EXTENDED_RESOURCE}, default {EXTENDED_RESOURCE_DEFAULT})",
    )
    parser.add_argument(
        "--no-annotations",
        action="store_true",
        help="the document's profile: do not add CAA's default_vcpus/default_memory/default_gpus annotations",
    )
    parser.set_defaults(func=_handle)
