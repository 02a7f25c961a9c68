"""The sim-trained STEM recipe on one CUDA GPU, in minutes (issue 17, item 6).

The same model, data and loss as the CPU run (:mod:`emdenoise.train.sim_denoiser`); only
the batch, the learning rate and the data processes change with the machine. It continues
a committed ``carry.npz`` when given one, so GPU minutes add to the CPU hours of the same
curve, and writes ``carry.npz`` and ``history.jsonl`` that
``python -m emdenoise.train.sim_export`` takes. Prepared for the lent GPU machines (PyTorch,
NumPy and SciPy are installed there; nothing else is needed), as one call::

    cd python && python3 -m emdenoise.train.gpu_recipe stem --minutes 8 \\
        --init ../training/stem-vst-unet32/carry.npz --out "$OUT/run"

The HRTEM recipe needs the exit-wave bank (abTEM, ~800 MB), which does not travel to that
machine: it is not offered here.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emdenoise.train.gpu_recipe", description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=("stem",))
    parser.add_argument("--minutes", type=float, default=8.0, help="training time (default 8)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (carry.npz, history.jsonl, state.pt)")
    parser.add_argument("--init", type=Path, help="carry.npz to continue (the committed CPU run)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)

    import torch

    from emdenoise.train.sim_denoiser import SimTrainConfig, train

    if not torch.cuda.is_available():
        parser.error("no CUDA device: run the CPU recipe, python -m emdenoise.train.sim_denoiser")
    workers = max(1, min(14, (os.cpu_count() or 2) - 2))
    config = SimTrainConfig(source=args.source, batch=args.batch, lr=args.lr, device="cuda", workers=workers,
                            threads=2, validate_every=200)
    counters = train(args.out, config, hours=args.minutes / 60.0, init=args.init)
    print(json.dumps({"event": "done", "carry": str(args.out / "carry.npz"),
                      **{k: v for k, v in counters.items() if k != "gaussian"}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
