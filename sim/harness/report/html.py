"""report.html: the certification report a vendor hands on, one self-contained file.

No scripts, no external styles or fonts: it must open (and print) the same way in an archive
years later. Everything in it comes from summary.json, so the two can never disagree.

Its order is a certifier's: the verdict and its scope first (the whole catalogue or a
selection, the MUST requirements that decide it, the SHOULD advisories that do not), then a
summary per feature, what was not applicable grouped by what the target lacks, the
traceability matrix (an outline's examples folded under their scenario: "12 of 12
examples passed", the examples on demand), what was not run, and the run's identity and
result files. A print stylesheet lays it out for PDF.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import Any

from sim.harness.report.results import FAILED, NOT_APPLICABLE, NOT_RUN, OUTCOMES, PASSED

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1f24;max-width:80rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.n{text-align:right;white-space:nowrap}
.verdict{font-weight:600;white-space:nowrap}td code{white-space:nowrap}
.passed{color:#116329}.failed{color:#b3261e}.not-applicable{color:#6e7781}.not-run{color:#9a6700}
.banner{padding:.8rem 1rem;border-radius:.4rem;font-size:1.15rem;font-weight:600;margin:1rem 0 .5rem}
.banner.CONFORMANT{background:#dafbe1}.banner.NOT-CONFORMANT{background:#ffebe9}
.banner.PARTIAL,.banner.NOTHING-VERIFIED{background:#fff8c5}
.scope{font-size:.95rem}.scope td,.scope th{border:none;padding:.15rem 1rem .15rem 0}
.scope th{background:none}
code{font-size:.85rem}td:last-child{overflow-wrap:anywhere}
details summary{cursor:pointer}details ul{margin:.3rem 0 .3rem 1rem;padding:0}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
.level{font-size:.75rem;font-weight:600;padding:0 .3rem;border:1px solid currentColor;border-radius:.2rem}
.level.SHOULD{color:#6e7781}
@page{size:A4;margin:14mm 12mm}
@media print{
body{margin:0;max-width:none;font-size:9.5pt}h1{font-size:15pt}h2{font-size:12pt;break-after:avoid}
table{font-size:8.5pt}thead{display:table-header-group}tr,.banner,dl{break-inside:avoid}
.banner,th,.level{-webkit-print-color-adjust:exact;print-color-adjust:exact}
td code{white-space:normal;word-break:break-all}details summary{list-style:none}
}
"""


def _cls(text: str) -> str:
    return text.replace(" ", "-")


def _verdict(verdict: str) -> str:
    return f'<span class="verdict {_cls(verdict)}">{escape(verdict)}</span>'


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f'<span class="{_cls(k)}">{counts.get(k, 0)} {escape(k)}</span>' for k in OUTCOMES)


def _definition_list(items: dict[str, Any]) -> str:
    rows = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in items.items())
    return f"<dl>{rows}</dl>"


def _scope(summary: dict[str, Any]) -> str:
    scope, counts = summary["scope"], summary["counts"]
    if scope["full"]:
        extent = f"the whole catalogue: {scope['scenarios_run']} scenario(s) ran"
    else:
        selection = " ".join(summary["selection"]) or "an interrupted or narrowed run"
        extent = (
            f"a selection ({escape(selection)}): {scope['scenarios_run']} scenario(s) ran, "
            f"{len(scope['scenarios_not_run'])} did not; {len(scope['requirements_not_run'])} "
            "requirement(s) not run (listed below)"
        )
    advisories = summary["advisories"]
    advisory_items = "".join(
        f"<li><code>{escape(a['id'])}</code> {escape(a['text'])}"
        + (f" — {escape('; '.join(a['reasons']))}" if a["reasons"] else "")
        + "</li>"
        for a in advisories
    )
    failed = [r for r in summary["requirements"] if r.get("level") == "MUST" and r["verdict"] == FAILED]
    failed_row = (
        "<tr><th>failed MUST requirements</th><td>"
        + ", ".join(f"<code>{escape(r['id'])}</code>" for r in failed)
        + "</td></tr>"
        if failed
        else ""
    )
    return (
        '<table class="scope">'
        f"<tr><th>scope</th><td>{'full' if scope['full'] else 'partial'}: {extent}</td></tr>"
        f"<tr><th>MUST requirements (decide the verdict)</th><td>{_counts_text(counts['must'])}</td></tr>"
        + failed_row
        + "<tr><th>advisories (SHOULD requirements, do not)</th>"
        + f"<td>{_counts_text(counts['should'])}</td></tr>"
        f"<tr><th>scenarios</th><td>{_counts_text(counts['scenarios'])}</td></tr>"
        f"<tr><th>run</th><td><code>{escape(summary['run_id'])}</code>, {escape(summary['started'])} to "
        f"{escape(summary['finished'])}, target {escape(summary['target'].get('name', ''))}</td></tr>"
        "</table>"
        + (
            f"<p><strong>Advisories</strong> (SHOULD requirements that failed):</p><ul>{advisory_items}</ul>"
            if advisories
            else ""
        )
    )


def _features(summary: dict[str, Any]) -> str:
    per: dict[str, Counter[str]] = {}
    for scenario in summary["scenarios"]:
        per.setdefault(scenario["feature"] or "(unknown feature)", Counter())[scenario["outcome"]] += 1
    rows = "".join(
        f"<tr><td>{escape(feature)}</td><td class=n>{sum(c.values())}</td>"
        + "".join(f'<td class="n {_cls(k)}">{c.get(k, 0)}</td>' for k in OUTCOMES)
        + "</tr>"
        for feature, c in sorted(per.items())
    )
    head = "".join(f"<th>{escape(k)}</th>" for k in OUTCOMES)
    return f"<table><thead><tr><th>feature</th><th>scenarios</th>{head}</tr></thead>{rows}</table>"


def _not_applicable(summary: dict[str, Any]) -> str:
    groups = summary["not_applicable"]
    if not groups:
        return "<p>Every scenario that ran was applicable on this target.</p>"
    rows = "".join(
        f"<tr><td>{escape(g['lacks'])}</td><td>{escape(g['reason'] or '')}</td>"
        f"<td class=n>{len(g['scenarios'])}</td>"
        f"<td>{' '.join(f'<code>{escape(r)}</code>' for r in g['requirements'])}</td></tr>"
        for g in groups
    )
    return (
        "<p>Scenarios this target cannot answer are <em>not applicable</em>: neither passed nor failed.</p>"
        "<table><thead><tr><th>what the target lacks</th><th>reason</th><th>scenarios</th>"
        f"<th>requirements</th></tr></thead>{rows}</table>"
    )


def _scenario_cell(scenarios: list[dict[str, Any]]) -> str:
    """One requirement's scenarios; an outline's examples fold under one line."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for scenario in scenarios:
        key = (scenario["feature"], scenario.get("outline") or scenario["scenario"])
        groups.setdefault(key, []).append(scenario)
    cells = []
    for (_, name), members in groups.items():
        if len(members) == 1 and not members[0].get("outline"):
            s = members[0]
            note = f" — {escape(s['reason'])}" if s.get("reason") else ""
            cells.append(f"{_verdict(s['outcome'])} {escape(s['scenario'])}{note}")
            continue
        outcomes = Counter(m["outcome"] for m in members)
        overall = next((o for o in (FAILED, PASSED, NOT_APPLICABLE) if outcomes.get(o)), NOT_RUN)
        tally = f"{outcomes.get(PASSED, 0)} of {len(members)} examples passed" + "".join(
            f", {outcomes[o]} {o}" for o in (FAILED, NOT_APPLICABLE, NOT_RUN) if outcomes.get(o)
        )
        items = "".join(
            f"<li>{_verdict(m['outcome'])} {escape(m['scenario'])}"
            + (f" — {escape(m['reason'])}" if m.get("reason") else "")
            + "</li>"
            for m in members
        )
        opened = " open" if outcomes.get(FAILED) else ""
        cells.append(
            f"<details{opened}><summary>{_verdict(overall)} {escape(name)}: {tally}</summary>"
            f"<ul>{items}</ul></details>"
        )
    return "<br>".join(cells) or "—"


def _matrix(summary: dict[str, Any]) -> str:
    """The traceability matrix: requirement -> level -> verdict -> the scenarios that decided it."""
    scenarios = {s["nodeid"]: s for s in summary["scenarios"]}
    rows = []
    for req in summary["requirements"]:
        level = req.get("level", "MUST")
        rows.append(
            f"<tr><td><code>{escape(req['id'])}</code></td>"
            f'<td><span class="level {escape(level)}">{escape(level)}</span></td>'
            f"<td>{escape(req['text'])}</td><td>{escape(req['source'])}</td><td>{_verdict(req['verdict'])}</td>"
            f"<td>{_scenario_cell([scenarios[n] for n in req['scenarios'] if n in scenarios])}</td></tr>"
        )
    return (
        "<table><thead><tr><th>id</th><th>level</th><th>requirement</th><th>source</th><th>verdict</th>"
        "<th>scenarios</th></tr></thead>" + "".join(rows) + "</table>"
    )


def _not_run(summary: dict[str, Any]) -> str:
    scope = summary["scope"]
    if scope["full"]:
        return ""
    requirements = {r["id"]: r for r in summary["requirements"]}
    req_items = "".join(
        f"<li><code>{escape(i)}</code> {escape(requirements[i]['text'])}</li>"
        for i in scope["requirements_not_run"]
    )
    scen_items = "".join(f"<li>{escape(label)}</li>" for label in scope["scenarios_not_run"])
    return (
        "<h2>Not run</h2><p>This run was a selection, so it is not a certificate. Left out:</p>"
        f"<details><summary>{len(scope['requirements_not_run'])} requirement(s)</summary><ul>{req_items}</ul>"
        f"</details><details><summary>{len(scope['scenarios_not_run'])} scenario(s)</summary>"
        f"<ul>{scen_items}</ul></details>"
    )


def render_report(summary: dict[str, Any], summary_sha256: str) -> str:
    """The whole HTML document."""
    verdict = summary["verdict"]
    suite = summary["suite"]
    artifacts = {name: info["sha256"] for name, info in summary["artifacts"].items()}
    artifacts["summary.json"] = summary_sha256
    target_name = escape(summary["target"].get("name", ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="peerpods-run-id" content="{escape(summary["run_id"])}">
<title>peerpods-conformance certification report — {target_name} — {escape(verdict)}</title>
<style>{_STYLE}</style></head><body>
<h1>Peer pods on IBM Z / LinuxONE — conformance certification report</h1>
<div class="banner {_cls(verdict)}">{escape(summary["headline"])}</div>
{_scope(summary)}
<h2>Features</h2>{_features(summary)}
<h2>Not applicable on this target</h2>{_not_applicable(summary)}
<h2>Traceability matrix</h2>{_matrix(summary)}
{_not_run(summary)}
<h2>Suite</h2>{
        _definition_list(
            {
                "name": suite["name"],
                "version": suite["version"],
                "commit": suite["commit"],
                "run id": summary["run_id"],
                "started": summary["started"],
                "finished": summary["finished"],
                "selection": " ".join(summary["selection"]) or "the whole catalogue",
            }
        )
    }
<h2>System under test</h2>{_definition_list(summary["target"])}
<h2>Result files of run {escape(summary["run_id"])}</h2>{
        _definition_list({name: f"sha256 {digest}" for name, digest in artifacts.items()})
    }
<p>SHA256SUMS beside this file lists all four; <code>sha256sum -c SHA256SUMS</code> checks them.</p>
</body></html>
"""
