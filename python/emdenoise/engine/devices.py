"""Choose where ONNX Runtime runs: a usable CUDA GPU, or the CPU.

onnxruntime-gpu lists the CUDA provider even with no GPU (or no CUDA 13 / cuDNN 9
libraries) and then silently falls back to CPU, so a GPU counts as usable only once a
real CUDA session has been created and kept the CUDA provider.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

import onnxruntime as ort

from emdenoise.errors import UserError

log = logging.getLogger(__name__)

CPU = ["CPUExecutionProvider"]
CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]


#: A one-node ONNX model (opset 17, IR 8): float ``x`` [1] -> Identity -> ``y``, serialised.
#: Written out instead of built with ``onnx.helper`` because importing onnx costs ~0.5 s of
#: start-up and inference needs only ONNX Runtime; tests/test_cli_startup.py checks that
#: these bytes equal what ``onnx.helper`` builds.
IDENTITY_GRAPH = (
    b'\x08\x08:;\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x05probeZ\x0f\n\x01x\x12\n\n\x08\x08\x01\x12'
    b'\x04\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01B\x04\n\x00\x10\x11'
)


@functools.lru_cache(maxsize=1)
def cuda_usable() -> bool:
    """True when a CUDA session can really be created and run here."""
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    options = ort.SessionOptions()
    options.log_severity_level = 4
    # Loading the CUDA provider without CUDA libraries logs an error through the default
    # logger that no session option silences; on a CPU machine that error is expected.
    ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(IDENTITY_GRAPH, options, providers=CUDA)
        if session.get_providers()[0] != "CUDAExecutionProvider":
            return False
        session.run(None, {"x": np.zeros(1, np.float32)})
    except Exception as error:  # any failure to start CUDA means: use the CPU
        log.info("CUDA provider not usable: %s", error)
        return False
    finally:
        ort.set_default_logger_severity(3)
    return True


def providers_for(device: str) -> list[str]:
    """Execution providers for ``device`` = ``auto`` | ``cpu`` | ``cuda``."""
    if device == "cpu":
        return CPU
    if device == "cuda":
        if not cuda_usable():
            raise UserError(
                "--device cuda was asked for but no usable CUDA GPU was found (onnxruntime-gpu needs "
                "CUDA 13 and cuDNN 9); use --device auto or cpu."
            )
        return CUDA
    if device == "auto":
        return CUDA if cuda_usable() else CPU
    raise UserError(f"device {device!r} is not one of auto, cpu, cuda.")


__all__ = ["cuda_usable", "providers_for"]
