"""Turn the printed seed-002 kernels into ONNX graphs and model folders.

Seed 002, sec. 3.1 / fig. 3: a kernel weights its w x w input and sums it into one output
pixel; applied at every pixel that is a single 2-D convolution (the kernels are symmetric,
so correlation and convolution agree). The graph is one ONNX ``Conv`` with zero padding
w // 2; the engine reflect-pads by the receptive-field radius and crops it again, so the
graph's own padding never reaches the result.

Run ``python -m emdenoise.export.kernel_graphs export/`` to rebuild the folders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from emdenoise.export.cards import write_card
from emdenoise.export.ede_kernels import DOMAINS, PrintedKernel, printed_kernels

OPSET = 17

# Lowest last-500-batch MSE among the printed sizes in seed 002, Table 3.
DEFAULT_SIZE = {"tem": 7, "stem": 5, "temstem": 11}
MODALITY = {"tem": "tem", "stem": "stem", "temstem": "tem+stem"}
TABLE3_MSE = {  # seed 002, Table 3: mean and std of the kernel MSE vs its autoencoder
    ("tem", 3): (0.010822, 0.000288), ("tem", 5): (0.009728, 0.000398),
    ("tem", 7): (0.008032, 0.000410), ("tem", 11): (0.008217, 0.000191),
    ("stem", 3): (0.181633, 0.002732), ("stem", 5): (0.177021, 0.002536),
    ("stem", 7): (0.178340, 0.002297), ("stem", 11): (0.181634, 0.002163),
    ("temstem", 3): (0.014224, 0.000436), ("temstem", 5): (0.014071, 0.000518),
    ("temstem", 7): (0.012350, 0.000599), ("temstem", 11): (0.011783, 0.000908),
}


def model_id(kernel: PrintedKernel) -> str:
    """``ede-kernel-<tem|stem|temstem>-<w>``."""
    return f"ede-kernel-{DOMAINS[kernel.domain]}-{kernel.size}"


def kernel_graph(weights: np.ndarray, name: str) -> onnx.ModelProto:
    """A single-Conv ONNX graph ``image (N,1,H,W) -> denoised (N,1,H,W)``."""
    size = weights.shape[0]
    pad = size // 2
    weight = numpy_helper.from_array(weights.astype(np.float32).reshape(1, 1, size, size), "kernel")
    conv = helper.make_node("Conv", ["image", "kernel"], ["denoised"], pads=[pad, pad, pad, pad])
    graph = helper.make_graph(
        [conv],
        name,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("denoised", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="emdenoise")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def kernel_card(kernel: PrintedKernel) -> dict:
    """Model card for one printed kernel."""
    domain = DOMAINS[kernel.domain]
    mse, std = TABLE3_MSE[(domain, kernel.size)]
    notes = [
        "Weights are the numbers printed in seed 002's appendix; emdenoise trained nothing here.",
        f"Sum of weights: {float(kernel.weights.sum()):.3f} (a sum above 1 brightens the output "
        "relative to the frame minimum, as the paper's kernel does).",
    ]
    notes += [f"Misprint repaired: {repair}." for repair in kernel.repairs]
    return {
        "id": model_id(kernel),
        "name": f"Ede {kernel.domain} denoising kernel {kernel.size}x{kernel.size}",
        "version": "1",
        "task": "denoise",
        "backend": "onnx",
        "architecture": "single w x w convolution (seed 002, sec. 3.1, fig. 3: kernel = MLP with 0 hidden layers)",
        "modality": MODALITY[domain],
        "default": DEFAULT_SIZE[domain] == kernel.size,
        "graphs": {"denoise": {"file": "model.onnx", "input": "image", "output": "denoised"}},
        "normalization": {
            "kind": "min-mean",
            "scope": "frame",
            "source": "seed 002, sec. 2.2: crops had their minima subtracted and were divided by their means",
        },
        "receptive_field": kernel.size,
        "global": False,
        "tile": {"size": 1024, "multiple_of": 1},
        "dose_range": None,
        "dose_range_note": (
            "seed 002 trains on ordinary-dose micrographs and states no dose; "
            "the kernels imitate a compression autoencoder's smoothing, not a Poisson model"
        ),
        "training_data": (
            f"Fitted by Ede (seed 002, sec. 3.2) to the latent-depth-16 {kernel.domain} autoencoder "
            "on 160x160 crops of the author's micrograph collection; weights transcribed from the appendix."
        ),
        "source": "J. M. Ede, seed 002, appendix (sec. 6), kernels for TEM, STEM and TEM+STEM",
        "paper_metrics": {
            "mse_vs_autoencoder_last_500_batches": {"mean": mse, "std": std, "source": "seed 002, Table 3"}
        },
        "metrics": {},
        "notes": notes,
    }


def export_kernels(out_dir: str | Path) -> list[Path]:
    """Write one model folder per printed kernel under ``out_dir``; returns the folders."""
    out_dir = Path(out_dir)
    folders = []
    for kernel in printed_kernels():
        folder = out_dir / model_id(kernel)
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(kernel_graph(kernel.weights, model_id(kernel)), folder / "model.onnx")
        write_card(folder, kernel_card(kernel))
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="export")
    args = parser.parse_args(argv)
    for folder in export_kernels(args.out_dir):
        print(folder)


if __name__ == "__main__":
    main()
