"""Regenerate the Python modules of this package's ``.proto`` files (a developer's tool).

``python -m sim.peerpods.hypervisor.generate`` runs protoc from grpcio-tools with the
mypy-protobuf plugin (both in the ``proto`` extra) and writes ``<name>_pb2.py`` and
``<name>_pb2.pyi`` beside each ``.proto``. ``tests/unit/test_hypervisor_wire.py`` generates
them again into a temporary folder and fails when the committed ones differ.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from sim.errors import ConformanceInputError

__all__ = ["PROTOS", "PROTO_DIR", "generate"]

PROTO_DIR = Path(__file__).resolve().parent
PROTOS = ("hypervisor.proto", "ttrpc.proto")


def generate(out: Path = PROTO_DIR) -> list[Path]:
    """Write the generated modules into ``out``; returns their paths."""
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]
    except ModuleNotFoundError:
        raise ConformanceInputError(
            "regenerating the protobuf modules needs grpcio-tools and mypy-protobuf: "
            "pip install -e '.[proto]'"
        ) from None
    plugin = shutil.which("protoc-gen-mypy") or str(Path(sys.executable).parent / "protoc-gen-mypy")
    if not Path(plugin).exists():
        raise ConformanceInputError(
            "protoc-gen-mypy (mypy-protobuf) is not installed: pip install -e '.[proto]'"
        )
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"--plugin=protoc-gen-mypy={plugin}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        *(str(PROTO_DIR / name) for name in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise ConformanceInputError(f"protoc failed on {', '.join(PROTOS)}")
    return sorted(p for name in PROTOS for p in out.glob(name.replace(".proto", "_pb2.py*")))


if __name__ == "__main__":  # pragma: no cover
    for path in generate():
        print(path)
