"""The LPAR prerequisites of doc 4.1.1, judged on the described LPARs in fixtures/lpar."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.lpar import prerequisites as pre

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "lpar"


def verdicts(name: str) -> dict[str, bool]:
    return {check.name: check.satisfied for check in pre.evaluate(pre.load_description(FIXTURES / name))}


@pytest.mark.parametrize("name", ["emperor4-se.yaml", "emperor5-se.yaml"])
def test_emperor_4_or_later_with_se_passes(name: str) -> None:
    assert all(verdicts(name).values())


def test_z15_fails_only_the_machine() -> None:
    assert verdicts("z15-se.yaml") == {pre.MACHINE_TYPE: False, pre.SECURE_UNPACK: True, pre.LIBVIRT_PV: True}


def test_se_off_fails_both_secure_execution_checks() -> None:
    assert verdicts("emperor4-se-off.yaml") == {
        pre.MACHINE_TYPE: True,
        pre.SECURE_UNPACK: False,
        pre.LIBVIRT_PV: False,
    }


def test_prot_virt_needs_the_kernel_parameter_and_the_ultravisor_flag() -> None:
    evidence = pre.LparEvidence("x", "Type: 3931\n", "root=/dev/dasda1", "1", None)
    check = pre.check_secure_unpack(evidence)
    assert not check.satisfied and "prot_virt=1 missing" in check.detail


def test_unknown_machine_type_is_named() -> None:
    check = pre.check_machine(pre.LparEvidence("x", "Type: 1234\n", None, None, None))
    assert not check.satisfied and check.detail.startswith("machine type 1234 is unknown")
    assert "MACHINES: " in check.detail and "or later" not in check.detail.split("cannot be judged")[1]


def test_malformed_description_names_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "lpar.yaml"
    bad.write_text("sysinfo: [1, 2]\n")
    with pytest.raises(pre.LparDescriptionError, match=f"{bad}: sysinfo must be text"):
        pre.load_description(bad)
    bad.write_text("machine: 3931\n")
    with pytest.raises(pre.LparDescriptionError, match="unknown field"):
        pre.load_description(bad)
