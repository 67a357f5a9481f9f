"""``peerpods-conformance diff``: compare a webhook endpoint with the reference, or with another.

    peerpods-conformance diff --webhook-url https://127.0.0.1:9443/mutate-v1-pod --webhook-ca ca.pem
    peerpods-conformance diff --webhook-url URL_A --webhook-url URL_B --webhook-ca CA_A --webhook-ca CA_B

Exit status 0 when no generated pod told them apart, 1 (with the smallest such pod
printed as YAML, and what each side made of it) when one did.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from sim.errors import ConformanceInputError
from sim.files import non_regular_kind
from sim.harness.cli.helptext import plain_doc
from sim.harness.difftest import Endpoint, compare, https_endpoint, reference_endpoint
from sim.peerpods.webhook import (
    ENV_EXTENDED_RESOURCE,
    ENV_TARGET_RUNTIMECLASS,
    EXTENDED_RESOURCE_DEFAULT,
    TARGET_RUNTIMECLASS_DEFAULT,
    WebhookSettings,
)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``diff``."""
    parser = subparsers.add_parser(
        "diff",
        help="differential test: generated pods through an endpoint vs the reference (or another endpoint)",
        description=plain_doc(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--webhook-url", action="append", required=True, help="endpoint A (and optionally B)")
    parser.add_argument(
        "--webhook-ca", action="append", default=[], help="CA for each URL, in order (one CA serves both)"
    )
    parser.add_argument("--examples", type=int, default=500, help="pods to generate (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed tries the same pods")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    parser.add_argument(
        "--target-runtimeclass",
        help=f"the reference's {ENV_TARGET_RUNTIMECLASS} (default: env, else {TARGET_RUNTIMECLASS_DEFAULT})",
    )
    parser.add_argument(
        "--extended-resource",
        help=f"the reference's {ENV_EXTENDED_RESOURCE} (default: env, else {EXTENDED_RESOURCE_DEFAULT})",
    )
    parser.set_defaults(func=run_diff)


def _sides(args: argparse.Namespace) -> tuple[tuple[str, Endpoint], tuple[str, Endpoint]]:
    urls: list[str] = args.webhook_url
    cas: list[str] = args.webhook_ca
    if len(urls) > 2:
        raise ConformanceInputError(
            "diff compares at most two endpoints (--webhook-url given more than twice)"
        )
    if len(cas) > len(urls):
        raise ConformanceInputError("more --webhook-ca than --webhook-url")
    per_url: list[str | None] = list(cas) if len(cas) == len(urls) else [cas[0] if cas else None] * len(urls)
    for ca in cas:
        if (kind := non_regular_kind(ca)) is not None:
            raise ConformanceInputError(f"--webhook-ca {ca}: is {kind}, not a regular file")
        if not os.path.isfile(ca):
            raise ConformanceInputError(f"--webhook-ca {ca}: no such file")
    first = (urls[0], https_endpoint(urls[0], per_url[0], args.timeout))
    if len(urls) == 2:
        return first, (urls[1], https_endpoint(urls[1], per_url[1], args.timeout))
    settings = WebhookSettings.resolve(
        os.environ, target_runtimeclass=args.target_runtimeclass, extended_resource=args.extended_resource
    )
    return first, ("reference", reference_endpoint(settings))


def run_diff(args: argparse.Namespace) -> int:
    """Generate pods until the sides differ or the examples run out."""
    if args.examples < 1:
        raise ConformanceInputError(f"--examples {args.examples} must be at least 1")
    (left_name, left), (right_name, right) = _sides(args)
    result = compare(left, right, examples=args.examples, random_seed=args.seed)
    if result.difference is None:
        print(f"diff: {result.tried} generated pods, no difference between {left_name} and {right_name}")
        return 0
    found = result.difference
    report = {
        "pod": found.pod,
        left_name: found.left,
        right_name: found.right,
    }
    print(
        f"diff: {left_name} and {right_name} differ; smallest pod found (seed {args.seed}):", file=sys.stderr
    )
    print(yaml.safe_dump(report, sort_keys=False), end="")
    return 1
