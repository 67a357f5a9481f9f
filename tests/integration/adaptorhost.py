"""What the tests of adaptor processes need of the machine: one home for the skip reason."""

from __future__ import annotations

import os

from sim.lpar import isolated
from sim.lpar.assets import AssetsMissing, find_assets


def why_no_adaptor_host() -> str | None:
    """Why adaptor processes cannot run here in an isolated LPAR (None: they can): root, the
    LPAR's tools and the pod VM image (what `.ci/setup-lpar-host` prepares)."""
    if os.geteuid() != 0:
        return "not root"
    missing = [tool for tool in isolated.TOOLS if isolated._which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        find_assets(None)
    except AssetsMissing as exc:
        return f"no pod VM image: {exc}"
    return None
