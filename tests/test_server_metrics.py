"""Prometheus metrics endpoint of the server (issue 22, item 5)."""

from __future__ import annotations

import re
import urllib.request

import numpy as np
import pytest

from emdenoise.client import RemoteClient
from emdenoise.errors import ModelNotFound
from emdenoise.server.subprocess_server import ServerProcess

pytest.importorskip("prometheus_client", reason="prometheus_client comes with the [server] extra")

MODEL = "ede-kernel-tem-5"


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics:\n{text}"
    return float(match.group(1))


def test_metrics_count_requests_errors_latency_frames_and_in_flight():
    with ServerProcess("--metrics-port", "0") as server:
        url = re.search(r"metrics on (http://\S+)", "".join(server.lines)).group(1)
        with RemoteClient(server.address) as client:
            assert len(list(client.denoise([np.ones((16, 16), np.uint16)] * 3, MODEL))) == 3
            with pytest.raises(ModelNotFound):
                list(client.denoise([np.ones((8, 8), np.uint16)], "no-such-model"))
        text = urllib.request.urlopen(url, timeout=10).read().decode()
    assert value(text, 'emdenoise_requests_total{method="Denoise"}') == 2
    assert value(text, 'emdenoise_errors_total{code="NOT_FOUND",method="Denoise"}') == 1
    assert value(text, "emdenoise_frames_total") == 3
    assert value(text, 'emdenoise_request_seconds_count{method="Denoise"}') == 2
    assert value(text, 'emdenoise_in_flight{method="Denoise"}') == 0
