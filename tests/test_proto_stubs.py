"""The committed stubs in python/emdenoise/v1/ match proto/ (the source of truth)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from emdenoise.v1 import denoiser_pb2, denoiser_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
protoc = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools comes with the [dev] extra")


def _clear_json_names(messages) -> None:
    """Drop json_name from every field, nested messages (e.g. map entries) included."""
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _clear_json_names(message.nested_type)


def test_stubs_are_not_stale(tmp_path):
    """Compiling the .proto now gives the descriptor the committed stubs carry."""
    out = tmp_path / "descriptor.bin"
    command = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'proto'}", f"--descriptor_set_out={out}",
        "emdenoise/v1/denoiser.proto",
    ]
    subprocess.run(command, check=True, capture_output=True)
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    committed = descriptor_pb2.FileDescriptorProto.FromString(denoiser_pb2.DESCRIPTOR.serialized_pb)
    _clear_json_names(fresh.message_type)  # descriptor sets add json_name; generated stubs omit it
    assert committed == fresh, "run `python proto/generate.py` and commit the stubs"


def test_grpc_stub_has_every_rpc():
    service = denoiser_pb2.DESCRIPTOR.services_by_name["Denoiser"]
    for method in service.methods:
        assert hasattr(denoiser_pb2_grpc.DenoiserServicer, method.name)
