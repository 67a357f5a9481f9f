"""report.html: the certification report a vendor hands on, one self-contained file.

No scripts, no external styles or fonts: it must open the same way in an archive years
later. Everything in it comes from summary.json, so the two can never disagree.
"""

from __future__ import annotations

from html import escape
from typing import Any

from sim.report.results import FAILED, NOT_APPLICABLE, PASSED

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1f24;max-width:80rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}.verdict{font-weight:600;white-space:nowrap}
td code{white-space:nowrap}
.passed{color:#116329}.failed{color:#b3261e}.not-applicable{color:#6e7781}.skipped,.not-run{color:#9a6700}
.banner{padding:.8rem 1rem;border-radius:.4rem;font-size:1.1rem;font-weight:600;margin:1rem 0}
.banner.passed{background:#dafbe1}.banner.failed{background:#ffebe9}code{font-size:.85rem}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
"""


def _cls(verdict: str) -> str:
    return verdict.replace(" ", "-")


def _verdict(verdict: str) -> str:
    return f'<span class="verdict {_cls(verdict)}">{escape(verdict)}</span>'


def _definition_list(items: dict[str, Any]) -> str:
    rows = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in items.items())
    return f"<dl>{rows}</dl>"


def _counts_table(counts: dict[str, dict[str, int]]) -> str:
    head = "".join(f"<th>{escape(k)}</th>" for k in counts["requirements"])
    req = "".join(f"<td>{v}</td>" for v in counts["requirements"].values())
    scen_cells = "".join(f"<td>{counts['scenarios'].get(k, '')}</td>" for k in counts["requirements"])
    return (
        f"<table><tr><th></th>{head}</tr><tr><th>requirements</th>{req}</tr>"
        f"<tr><th>scenarios</th>{scen_cells}</tr></table>"
    )


def _matrix(summary: dict[str, Any]) -> str:
    """The traceability matrix: requirement -> verdict -> the scenarios that decided it."""
    scenarios = {s["nodeid"]: s for s in summary["scenarios"]}
    rows = []
    for req in summary["requirements"]:
        cells = []
        for nodeid in req["scenarios"]:
            scenario = scenarios[nodeid]
            note = f" — {escape(scenario['reason'])}" if scenario.get("reason") else ""
            cells.append(f"{_verdict(scenario['outcome'])} {escape(scenario['scenario'])}{note}")
        rows.append(
            f"<tr><td><code>{escape(req['id'])}</code></td><td>{escape(req['text'])}</td>"
            f"<td>{escape(req['source'])}</td><td>{_verdict(req['verdict'])}</td>"
            f"<td>{'<br>'.join(cells) or '—'}</td></tr>"
        )
    return (
        "<table><tr><th>id</th><th>requirement</th><th>source</th><th>verdict</th><th>scenarios</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render_report(summary: dict[str, Any], summary_sha256: str) -> str:
    """The whole HTML document."""
    verdict = summary["verdict"]
    applicable_failed = summary["counts"]["scenarios"].get(FAILED, 0)
    headline = (
        "CONFORMANT: every applicable scenario passed"
        if verdict == PASSED
        else f"NOT CONFORMANT: {applicable_failed} scenario(s) failed or did not run"
    )
    suite = summary["suite"]
    artifacts = {name: f"{info['sha256']}" for name, info in summary["artifacts"].items()}
    artifacts["summary.json"] = summary_sha256
    not_applicable = summary["counts"]["requirements"].get(NOT_APPLICABLE, 0)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>peerpods-conformance certification report — {escape(summary["target"].get("name", ""))}</title>
<style>{_STYLE}</style></head><body>
<h1>Peer pods on IBM Z / LinuxONE — conformance certification report</h1>
<div class="banner {_cls(verdict)}">{escape(headline)}</div>
<h2>Suite</h2>{
        _definition_list(
            {
                "name": suite["name"],
                "version": suite["version"],
                "commit": suite["commit"],
                "started": summary["started"],
                "finished": summary["finished"],
                "selection": " ".join(summary["selection"]) or "all scenarios",
            }
        )
    }
<h2>System under test</h2>{_definition_list(summary["target"])}
<h2>Counts</h2>{_counts_table(summary["counts"])}
<p>{not_applicable} requirement(s) could not be answered by this target and are reported
<em>not applicable</em>; they are neither passed nor failed.</p>
<h2>Traceability matrix</h2>{_matrix(summary)}
<h2>Result files</h2>{_definition_list({name: f"sha256 {digest}" for name, digest in artifacts.items()})}
</body></html>
"""
