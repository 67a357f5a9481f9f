"""report.html as a certifier reads it: the chart, the links, neutral zeros, the not-applicable
table without repetition, and the identity block (the product from --product)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "summary.schema.json").read_text())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    where = tmp_path_factory.mktemp("certificate")
    product = where / "PRODUCT.yaml"
    product.write_text(
        'vendor: Example\nproduct: Peer Pods\nversion: "3.1"\ncontact: https://example.com/c\n'
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "--report-dir",
            str(where / "r"),
            "--product",
            str(product),
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr
    summary = json.loads((where / "r" / "summary.json").read_text())
    return (where / "r" / "report.html").read_text(encoding="utf-8"), summary


def test_the_summary_with_its_identity_passes_the_schema(report: tuple[str, dict[str, Any]]) -> None:
    summary = report[1]
    jsonschema.validate(summary, SCHEMA)
    assert summary["product"] == {
        "vendor": "Example",
        "product": "Peer Pods",
        "version": "3.1",
        "contact": "https://example.com/c",
    }
    assert set(summary["host"]) == {"host", "os", "architecture", "python"}
    assert isinstance(summary["duration_seconds"], float)


def test_a_chart_of_must_results_inline_without_script(report: tuple[str, dict[str, Any]]) -> None:
    html = report[0]
    assert "<script" not in html and "http://" not in html
    svg = re.search(r"<svg class=\"chart\".*?</svg>", html, re.S)
    assert svg is not None
    assert svg.group(0).count("<g ") == 10  # one bar per feature that checks a MUST
    assert 'class="passed"' in svg.group(0) and 'class="not-applicable"' in svg.group(0)


def test_failed_ids_link_to_their_matrix_rows(report: tuple[str, dict[str, Any]]) -> None:
    html = report[0]
    assert '<a href="#WH-023"><code class="id">WH-023</code></a>' in html  # the advisory
    assert '<tr id="WH-023">' in html


def test_zero_counts_are_neutral(report: tuple[str, dict[str, Any]]) -> None:
    html = report[0]
    assert '<span class="zero">0 failed</span>' in html
    assert not re.search(r'class="(?:n )?failed">0[ <]', html)


class Cells(HTMLParser):
    """The text of each row of the not-applicable table."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.depth = 0
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr" and self.inside:
            self.rows.append([])
        if tag == "td" and self.rows:
            self.rows[-1].append("")

    def handle_data(self, data: str) -> None:
        if self.inside and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


def test_the_not_applicable_table_says_each_thing_once(report: tuple[str, dict[str, Any]]) -> None:
    html = report[0]
    section = html.split("<h2>Not applicable on this target</h2>", 1)[1].split("<h2>", 1)[0]
    parser = Cells()
    parser.inside = True
    parser.feed(section)
    rows = [row for row in parser.rows if row]
    assert rows and all(len(row) == 4 for row in rows)
    for lacks, meaning, _, _ in rows:
        assert lacks.strip() in ("lpar-host", "guest"), lacks
        assert lacks.strip() not in meaning
    assert "not applicable on target" not in section
