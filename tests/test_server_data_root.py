"""Training reads server files only under serve --data-root, and says nothing about others (issue 22, item 5)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tifffile

from emdenoise.server.subprocess_server import ServerProcess
from emdenoise.v1 import denoiser_pb2 as pb
from emdenoise.v1 import denoiser_pb2_grpc as pb_grpc


def start_training(address: str, server_path: str) -> grpc.RpcError:
    options = pb.TrainSeriesOptions(model_id="my-series", server_path=server_path, recipe="noise2atom")
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.DenoiserStub(channel).StartTraining(iter([pb.TrainSeriesRequest(options=options)]), timeout=30)
    return caught.value


@pytest.fixture
def layout(tmp_path, env):
    root, outside = tmp_path / "root", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    secret = outside / "secret.tif"
    tifffile.imwrite(secret, np.zeros((4, 32, 32), np.uint16))
    (root / "link.tif").symlink_to(secret)
    return root, secret


def test_paths_outside_the_data_root_are_permission_denied_alike(layout):
    root, secret = layout
    with ServerProcess("--data-root", str(root)) as server:
        answers = [start_training(server.address, name) for name in (
            str(secret), str(secret.parent / "missing.tif"), "../private/secret.tif", "link.tif", "/etc/passwd",
        )]
        inside = start_training(server.address, "missing.tif")
    assert {a.code() for a in answers} == {grpc.StatusCode.PERMISSION_DENIED}
    assert len({a.details() for a in answers}) == 1  # existing or not, file or link: the same sentence
    assert "only reads training files under its data root" in answers[0].details()
    assert "secret" not in answers[0].details() and "private" not in answers[0].details()
    assert inside.code() == grpc.StatusCode.INVALID_ARGUMENT  # inside the root, the path is looked at
    assert "missing.tif is not a file under the server's data root" in inside.details()


def test_without_a_data_root_no_server_path_is_read(layout, server):
    _, secret = layout
    answer = start_training(server.address, str(secret))
    assert answer.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "started without --data-root" in answer.details()
