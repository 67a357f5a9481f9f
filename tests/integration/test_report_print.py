"""report.html prints cleanly to PDF: headless Chromium, as a vendor filing the report would.

Skipped, with the reason, when no Chromium is installed (``.ci/setup-host`` installs Debian's
``chromium``; the README lists this test among those a machine without it skips).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from plumbum import local

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian package 'chromium')")


def test_the_report_prints_to_a4_pdf(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    python = local[sys.executable].with_cwd(ROOT)
    tags = "WH-006 or NL-002 or needs-guest"  # folded outline examples, not-applicable groups, "not run"
    python["-m", "sim", "run", "--report-dir", str(reports), "--tags", tags, "-q"](retcode=3)
    pdf = tmp_path / "report.pdf"
    chromium = local[str(CHROMIUM)]
    chromium(
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--no-pdf-header-footer",
        f"--print-to-pdf={pdf}",
        (reports / "report.html").as_uri(),
        timeout=120,
    )
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    boxes = {tuple(round(float(v)) for v in m.split()) for m in re.findall(rb"/MediaBox \[([^\]]+)\]", data)}
    assert boxes == {(0, 0, 595, 842)}, f"the print stylesheet's A4 page was not used: {boxes}"
    pages = int(re.findall(rb"/Count (\d+)", data)[-1])
    assert 1 <= pages <= 12, pages
