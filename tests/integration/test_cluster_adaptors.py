"""``--target cluster --adaptor-binary``: each node's cloud-api-adaptor is a process that patches its
own Node through the in-cluster configuration, as CAA's DaemonSet pods do.

Needs root, libvirt's daemons, socat, the control plane's binaries and the s390x pod VM disk
image (what `.ci/setup-lpar-host` and `make cli` prepare); skipped with the reason elsewhere.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from sim.errors import ConformanceInputError
from sim.harness.targets.cluster.incluster import SERVICE_ACCOUNT_DIR
from sim.lpar import netns
from sim.lpar.diskimage import DiskImageMissing, find_disk_image
from tests.integration.adaptorhost import why_no_adaptor_host

SELECTION = "NL-001 or NL-005 or NL-006"
CHOSEN = ("--tags", SELECTION, "--report-dir")


def _why_not() -> str | None:
    """An adaptor host, socat, and the disk image a user's binary boots."""
    missing = why_no_adaptor_host()
    if missing is not None:
        return missing
    if shutil.which("socat") is None:
        return "missing socat"
    try:
        find_disk_image("s390x", None)
    except (DiskImageMissing, ConformanceInputError) as exc:
        return f"no s390x pod VM disk image: {exc}"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=f"no adaptor processes here: {_why_not()}")


def run_cluster(binary: str, report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "--target",
            "cluster",
            "--adaptor-binary",
            binary,
            *CHOSEN,
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def adaptor_logs(report: Path) -> str:
    """What every adaptor process printed, from the run's results bundle."""
    text = []
    with tarfile.open(report / "results.tar.gz") as bundle:
        for member in bundle.getmembers():
            if "/logs/adaptor/" in member.name and member.isfile():
                handle = bundle.extractfile(member)
                assert handle is not None
                text.append(io.TextIOWrapper(handle, errors="replace").read())
    return "\n".join(text)


def _dead_runs_namespaces() -> list[str]:
    return [
        name
        for name in netns.names()
        if name.startswith("ppc-") and not Path(f"/proc/{name.split('-')[1]}").exists()
    ]


def test_the_reference_adaptor_processes_patch_their_nodes(tmp_path: Path) -> None:
    """The node limit scenarios pass, and the capacity they read is what each adaptor process
    patched itself (its log says so), not the node agent's doing."""
    before = _dead_runs_namespaces()
    done = run_cluster("reference", tmp_path / "r")
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]  # PARTIAL: a selection passed
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["counts"]["scenarios"]["failed"] == 0
    assert summary["counts"]["scenarios"]["passed"] >= 4
    logs = adaptor_logs(tmp_path / "r")
    assert "node worker-0 advertises 3 kata.peerpods.io/vm" in logs  # NL-001/NL-002's limit
    assert "node worker-0 advertises 5 kata.peerpods.io/vm" in logs  # NL-006, after the restart
    assert "node worker-0 advertises nothing (negative limit)" in logs  # NL-005
    assert summary["target"]["adaptor's way into the cluster"].startswith("in-cluster configuration")
    assert not SERVICE_ACCOUNT_DIR.exists()  # the mount point made for the run is gone
    assert set(_dead_runs_namespaces()) <= set(before)


def test_an_adaptor_that_does_not_patch_its_node_fails_the_node_limits(tmp_path: Path) -> None:
    """A mutant: the reference adaptor, run as a user's binary from CAA's command line, but
    without NODE_NAME (a DaemonSet that forgets the downward API). Nothing advertises the pod
    VM limit then, and the node limit scenarios fail."""
    binary = tmp_path / "forgets-its-node"
    binary.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            # CAA's command line (libvirt -socket S -pods-dir P ...) to the reference adaptor
            [ "$1" = libvirt ] || exit 2
            unset NODE_NAME
            exec {sys.executable} -m sim adaptor serve --socket "$3" --pods-dir "$5"
            """
        )
    )
    binary.chmod(0o755)
    done = run_cluster(str(binary), tmp_path / "r")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    failed = {
        requirement
        for scenario in summary["scenarios"]
        if scenario["outcome"] == "failed"
        for requirement in scenario["requirements"]
    }
    assert {"NL-001", "NL-006"} <= failed, failed


@pytest.mark.parametrize(
    ("extra", "uri", "named"),
    [
        ({"adaptor_binary": "reference", "kubeconfig": "/nonexistent/kubeconfig"}, None, "--adaptor-binary"),
        ({"adaptor_binary": "reference"}, "test:///default", "leave out --libvirt-uri"),
    ],
)
def test_adaptor_processes_need_a_control_plane_and_the_runs_own_lpar(
    extra: dict[str, str], uri: str | None, named: str
) -> None:
    """Refused before anything starts: adaptors of a given cluster are its own, and the
    adaptors' namespace reaches the API server only in the LPAR the run makes."""
    from sim.errors import ConformanceInputError
    from sim.harness.targets.base import TargetOptions
    from sim.harness.targets.cluster import ClusterTarget

    with pytest.raises(ConformanceInputError, match=named):
        ClusterTarget.from_options(TargetOptions(libvirt_uri=uri, extra=extra))


class _NoTools:
    """shutil as seen by a machine without socat."""

    @staticmethod
    def which(tool: str) -> None:
        return None


def test_without_socat_adaptor_processes_are_refused_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.errors import ConformanceInputError
    from sim.harness.targets.base import TargetOptions
    from sim.harness.targets.cluster import ClusterTarget, incluster

    monkeypatch.setattr(incluster, "shutil", _NoTools())
    with pytest.raises(ConformanceInputError, match="socat is missing"):
        ClusterTarget.from_options(TargetOptions(extra={"adaptor_binary": "reference"}))
