"""Regenerate the Python stubs in python/emdenoise/v1/ from proto/emdenoise/v1/*.proto.

Run from the repository root after editing a .proto file (needs the [dev] extra):

    python proto/generate.py

tests/test_proto_stubs.py fails when the committed stubs no longer match the .proto files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "python"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "emdenoise" / "v1").glob("*.proto"))


def main() -> int:
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={OUT}", f"--pyi_out={OUT}", f"--grpc_python_out={OUT}"]
    args += [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    return protoc.main(args)


if __name__ == "__main__":
    sys.exit(main())
