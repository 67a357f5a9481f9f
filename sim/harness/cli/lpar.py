"""``peerpods-conformance lpar``: the emulated IBM Z LPAR as a users' tool.

* ``lpar prepare`` builds (or reuses) the s390x pod VM image in the cache; ``lpar prepare
  --disk --arch amd64|s390x`` the bootable qcow2 volume CAA's libvirt provider boots.
* ``lpar try POD.yaml`` admits, schedules and starts one pod on the LPAR target and prints
  what its pod VM received -- on ``qemu:///system`` the guest's own report, digest
  computed inside the s390x guest -- then deletes everything it made.
* ``lpar check [LPAR.yaml]`` judges the LPAR prerequisites of doc 4.1.1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sim.errors import ConformanceInputError
from sim.harness.cli.mutate import load_pod, read_source
from sim.lpar import host
from sim.paths import FIXTURES_DIR
from sim.yamlload import load_one

__all__ = ["register"]

#: The one default of every ``lpar`` sub-command: the emulated LPAR, libvirtd with QEMU.
DEFAULT_URI = host.SYSTEM_URI


def register(subparsers: Any) -> None:
    """Add ``lpar`` and its sub-commands."""
    parser = subparsers.add_parser(
        "lpar",
        help="the emulated IBM Z LPAR: prepare the pod VM image, try a pod",
        description="The emulated IBM Z LPAR (a KVM host under libvirt, s390x pod VMs under QEMU) that the "
        "lpar target runs pods on: build its pod VM image once (prepare), start one pod on it and read "
        "what its pod VM received (try), judge an LPAR's prerequisites (check).",
    )
    commands = parser.add_subparsers(dest="lpar_command", metavar="SUBCOMMAND", required=True)

    prepare = commands.add_parser("prepare", help="build the s390x pod VM image into the cache")
    prepare.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache directory (default $PEERPODS_CACHE or ~/.cache/peerpods-conformance/lpar)",
    )
    prepare.add_argument(
        "--force", action="store_true", help="rebuild even if the cache holds a current image"
    )
    prepare.add_argument(
        "--kernel",
        choices=("minimal", "debian"),
        default=None,
        help="the pod VM kernel (default minimal): minimal (built from Debian's linux-source; Debian's "
        "kernel if that fails, with a warning) or debian (Debian's generic s390x kernel). A run boots "
        "the minimal kernel's image when prepared; $PEERPODS_KERNEL=debian|minimal picks one. With "
        "--disk: s390x takes either (its minimal kernel has TCP/IP added), amd64 only debian",
    )
    prepare.add_argument(
        "--disk",
        action="store_true",
        help="build the bootable qcow2 volume CAA's libvirt provider boots (podvm-base.qcow2: no direct "
        "kernel; the agent in its disk mode) instead of the direct-boot kernel + initramfs",
    )
    prepare.add_argument(
        "--arch",
        choices=("amd64", "s390x"),
        default="s390x",
        help="with --disk: the pod VM's architecture (amd64: SeaBIOS + SYSLINUX; s390x: zipl bootmap). "
        "Default s390x",
    )
    prepare.set_defaults(func=_prepare)

    try_ = commands.add_parser("try", help="start one pod on the LPAR target and print its pod VM's report")
    try_.add_argument("pod", help="Pod manifest (YAML), '-' for stdin")
    try_.add_argument("--peer-pods-cm", default=None, help="ConfigMap peer-pods-cm (YAML) to apply first")
    try_.add_argument("--libvirt-uri", default=DEFAULT_URI, help=f"libvirt URI (default {DEFAULT_URI})")
    try_.add_argument("--cache", type=Path, default=None, help="pod VM image cache directory")
    try_.set_defaults(func=_try)

    check = commands.add_parser(
        "check",
        help="judge the LPAR prerequisites (doc 4.1.1)",
        epilog="examples:\n  peerpods-conformance lpar check emperor4-se\n"
        "  peerpods-conformance lpar check ./my-lpar.yaml\n"
        "  peerpods-conformance lpar check --libvirt-uri qemu:///system",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "description",
        nargs="?",
        help="an LPAR description: a YAML file, or the name of a packaged one "
        f"({', '.join(packaged_lpars())}); none: the emulated LPAR at --libvirt-uri",
    )
    check.add_argument("--libvirt-uri", default=DEFAULT_URI, help=f"libvirt URI (default {DEFAULT_URI})")
    check.set_defaults(func=_check)


def packaged_lpars() -> list[str]:
    """The names of the LPAR descriptions shipped with the suite."""
    return sorted(path.stem for path in (FIXTURES_DIR / "lpar").glob("*.yaml"))


def lpar_description(text: str) -> Path:
    """A file given by path, or a packaged description given by name (``emperor4-se``)."""
    path = Path(text)
    if path.exists() or path.suffix or "/" in text:
        return path
    packaged = FIXTURES_DIR / "lpar" / f"{text}.yaml"
    if packaged.is_file():
        return packaged
    raise ConformanceInputError(
        f"LPAR description {text!r}: no such file, and no packaged description of that name "
        f"(packaged: {', '.join(packaged_lpars())})"
    )


#: What ``lpar prepare`` says before it starts (figures measured on 2 cores).
PREPARE_ANNOUNCEMENT = (
    "lpar prepare: builds the s390x pod VM image: a minimal kernel from Debian's linux-source, the "
    "pod VM agent (Go, cross-compiled) and an initramfs from Debian packages. The first build takes "
    "about 10-25 minutes (the kernel most of it); later runs reuse the cache in seconds. Cache: {cache}"
)


def _prepare(args: argparse.Namespace) -> int:
    if args.disk:
        return _prepare_disk(args)
    from sim.lpar.assets import default_cache_dir
    from sim.lpar.builder import prepare

    cache = (args.cache or default_cache_dir()).expanduser()
    print(PREPARE_ANNOUNCEMENT.format(cache=cache), file=sys.stderr, flush=True)

    assets, reused = prepare(
        args.cache,
        log=lambda line: print(line, file=sys.stderr),
        force=args.force,
        kernel=args.kernel or "minimal",
    )
    state = "reused from the cache" if reused else "built"
    print(f"pod VM image {assets.key} ({assets.flavour} kernel) {state}: {assets.directory}")
    return 0


def _prepare_disk(args: argparse.Namespace) -> int:
    from sim.lpar.diskimage import prepare_disk

    image, reused = prepare_disk(
        args.arch,
        args.cache,
        log=lambda line: print(line, file=sys.stderr),
        force=args.force,
        kernel=args.kernel,
    )
    state = "reused from the cache" if reused else "built"
    size = image.volume.stat().st_size
    what = f"{image.arch}, {image.flavour} kernel"
    print(f"pod VM disk image {image.key} ({what}) {state}: {image.volume} ({size} bytes)")
    return 0


def _config_map_data(source: str) -> dict[str, str]:
    """The ``data`` of a ConfigMap manifest, every value a string as Kubernetes requires."""
    manifest = load_one(read_source(source, what="peer-pods-cm"), source=source)
    if not isinstance(manifest, dict) or manifest.get("kind") != "ConfigMap":
        raise ConformanceInputError(f"{source}: expected a ConfigMap manifest")
    data = manifest.get("data") or {}
    if not isinstance(data, dict):
        raise ConformanceInputError(f"{source}: data must be a mapping of strings")
    bad = sorted(str(key) for key, value in data.items() if not isinstance(value, str))
    if bad:
        raise ConformanceInputError(f"{source}: data.{bad[0]} must be a string (quote it)")
    return {str(key): value for key, value in data.items()}


def _try(args: argparse.Namespace) -> int:
    from sim.harness.targets.lpar import LparTarget

    pod = load_pod(read_source(args.pod, what="pod"), source=args.pod)
    cm = _config_map_data(args.peer_pods_cm) if args.peer_pods_cm else {}
    metadata = pod.setdefault("metadata", {})
    namespace = str(metadata.setdefault("namespace", "default"))
    name = str(metadata.get("name") or "")
    if not name:
        raise ConformanceInputError(f"{args.pod}: the pod has no metadata.name")
    target = LparTarget(args.libvirt_uri, cache=args.cache)
    try:
        env = target.open_environment()
        try:
            env.set_peer_pods_config(cm)
            env.create_namespace(namespace)
            env.add_node("worker-0")
            outcome = env.create_pod(pod)
            if not outcome.admitted:
                print(f"pod {namespace}/{name} was refused: {outcome.denial}", file=sys.stderr)
                return 1
            if outcome.vm is None:
                print(f"pod {namespace}/{name} is {outcome.phase}: {outcome.reason}", file=sys.stderr)
                return 1
            report = env.guest_report(namespace, name)
            source = "the guest's own report" if "guest" in target.capabilities else "reference pod VM logic"
            print(f"pod VM {outcome.vm} at {args.libvirt_uri} ({source}):", file=sys.stderr)
            print(json.dumps(json.loads(report.to_json()), indent=2))
            env.delete_pod(namespace, name)
        finally:
            env.close()
    finally:
        target.close()
    return 0 if report.error is None else 1


def _check(args: argparse.Namespace) -> int:
    if args.description is not None:
        from sim.lpar.prerequisites import evaluate, load_description

        checks = evaluate(load_description(lpar_description(args.description)))
    else:
        from sim.harness.targets.base import NotApplicable
        from sim.harness.targets.lpar import LparTarget

        target = LparTarget(args.libvirt_uri)
        try:
            checks = target.lpar_checks(None)
        except NotApplicable as exc:
            raise ConformanceInputError(f"--libvirt-uri {args.libvirt_uri}: {exc}") from exc
        finally:
            target.close()
    for check in checks:
        print(f"{'PASS' if check.satisfied else 'FAIL'}  {check.name}: {check.detail}")
    return 0 if all(check.satisfied for check in checks) else 1
