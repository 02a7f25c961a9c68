"""Noise2Atom training jobs (seed 004) on real servers: start, progress, cancel, restart, no torch."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from emdenoise.cli import main
from emdenoise.client import RemoteClient
from emdenoise.errors import InvalidInput, UserError
from emdenoise.jobs.store import pid_alive
from emdenoise.simulate.stem import noise2atom_clean
from emdenoise.train.series_checks import check_series
from emdenoise.v1 import denoiser_pb2 as pb

torch = pytest.importorskip("torch")

#: A Python prelude for server processes: ``guard`` makes importing torch fail loudly (the
#: server must never import it), ``absent`` makes torch look uninstalled.
_PRELUDE = """
import importlib.abc, importlib.machinery, sys
MODE = {mode!r}
class _Loader(importlib.abc.Loader):
    def create_module(self, spec): return None
    def exec_module(self, module): raise ImportError("the server process imported torch")
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            if MODE == "absent":
                raise ModuleNotFoundError("No module named 'torch'")
            return importlib.machinery.ModuleSpec(name, _Loader())
        return None
sys.meta_path.insert(0, _Block())
from emdenoise.cli import main
sys.exit(main(["serve", "--host", "127.0.0.1", "--port", "0", "--device", "cpu"]))
"""


class Server:
    """``emdenoise serve`` in a child process whose torch is blocked (``guard``) or missing."""

    def __init__(self, env: dict, mode: str = "guard"):
        self.process = subprocess.Popen([sys.executable, "-c", _PRELUDE.format(mode=mode)], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})
        self.lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = re.search(r"listening on (\S+:\d+)", line)
            if match:
                self.address = match.group(1)
                return
        self.process.kill()
        raise RuntimeError("server did not start:\n" + "".join(self.lines))

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.stdout.close()


def stem_series(frames: int = 12, size: int = 64, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Clean Gaussian atom peaks (seed 004 domain) at 4 counts per atom on 0.2 counts of support, and Poisson frames."""
    rng = np.random.default_rng(seed)
    image, _ = noise2atom_clean(rng, lattice=2 * size, crop=size, positions=(20, 30))
    clean = (4.0 * image + 0.2).astype(np.float32)
    return clean, rng.poisson(np.broadcast_to(clean, (frames, size, size))).astype(np.float32)


def wait_for(predicate, timeout: float = 60.0, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("condition not reached in time")


# -- the series checks --------------------------------------------------------------------
def one_sentence(error: Exception) -> str:
    text = str(error)
    assert "\n" not in text and text.endswith(".") and "Traceback" not in text
    return text


def test_series_checks_name_the_problem_and_the_fix():
    _, noisy = stem_series()
    checked = check_series(list(noisy), gain=1.0, offset=0.0)
    assert checked.counts.shape == noisy.shape and checked.held_out == (5, 6) and len(checked.training_indices) == 10
    assert checked.dose == pytest.approx(float(noisy.mean()), rel=1e-6)

    with pytest.raises(InvalidInput) as few:
        check_series(list(noisy[:9]), gain=1, offset=0)
    assert "9 frame(s)" in one_sentence(few.value) and "at least 10" in str(few.value)

    mixed = list(noisy[:11]) + [noisy[0][:48, :40]]
    with pytest.raises(InvalidInput) as sizes:
        check_series(mixed, gain=1, offset=0)
    assert "different sizes" in one_sentence(sizes.value) and "frame 11" in str(sizes.value)

    rng = np.random.default_rng(0)
    normalised = rng.normal(0, 5, size=(12, 64, 64))  # zero-mean data: background-subtracted, not counts
    with pytest.raises(InvalidInput) as not_counts:
        check_series(list(normalised), gain=1, offset=0)
    assert "not a STEM count image" in one_sentence(not_counts.value) and "offset" in str(not_counts.value)

    clean, _ = stem_series()
    bright_field = rng.poisson(np.broadcast_to(clean.max() + 1 - clean, (12, 64, 64))).astype(np.float32)
    with pytest.raises(InvalidInput) as dark_atoms:
        check_series(list(bright_field), gain=1, offset=0)
    assert "HAADF" in one_sentence(dark_atoms.value) and "Invert" in str(dark_atoms.value)


def test_the_networks_follow_seed_004():
    from emdenoise.models.noise2atom import LowFrequency, Noise2AtomCritic, Noise2AtomUNet
    from emdenoise.train.noise2atom import PRESETS, gradient_penalty

    paper = PRESETS["paper"]
    assert (paper.depth, paper.residual_blocks, paper.crop, paper.batch, paper.lr, paper.critic_steps) == (3, 16, 128, 6, 5e-5, 5)
    assert (paper.gp_lambda, paper.alpha, paper.beta, paper.momentum) == (10.0, 5.0, 1.0, 0.9)
    generator = Noise2AtomUNet(width=4, depth=3, residual_blocks=1)
    x = torch.randn(2, 1, 48, 56) * 3
    with torch.no_grad():
        y = generator(x)
    assert y.shape == x.shape and float(y.abs().max()) <= 1.0  # tanh output, same size
    kernels = {m.kernel_size[0] for m in generator.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1}
    assert kernels == {3, 5, 7}  # the Xception branches (the 1 x 1 branch is pointwise only)
    lowpass = LowFrequency()
    assert lowpass(torch.ones(1, 1, 48, 48)).shape[-1] == 16  # 33 x 33, no padding
    assert float(lowpass.weight.sum()) == pytest.approx(1.0, abs=1e-5)
    critic = Noise2AtomCritic(crop=48, width=4)
    assert critic(torch.randn(3, 1, 48, 48)).shape == (3, 1)
    assert gradient_penalty(critic, torch.randn(3, 1, 48, 48), torch.randn(3, 1, 48, 48)).item() >= 0


class GaussianBlur(torch.nn.Module):
    """A fixed Gaussian blur in Ms2c's [-1, 1] convention, standing in for a generator."""

    multiple_of = 1

    def __init__(self, sigma: float):
        super().__init__()
        radius = max(1, int(3 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        g = torch.exp(-(x**2) / (2 * sigma**2))
        self.weight = torch.nn.Parameter((torch.outer(g, g) / g.sum() ** 2)[None, None], requires_grad=False)

    def forward(self, x):
        y = torch.nn.functional.conv2d(torch.nn.functional.pad((x + 1) / 2, [self.weight.shape[-1] // 2] * 4,
                                                                mode="reflect"), self.weight)
        return y * 2 - 1


def test_thinned_error_ranks_restorations_like_the_true_error_when_atoms_move():
    """Consecutive frames differ where atoms hop, so the paired-frame error favours blur;
    binomial halves of one frame share its clean image, so the thinned error does not."""
    from emdenoise.metrics import paired_frame_mse
    from emdenoise.train.noise2atom import fit_output_map, input_scale, restore_frames, thinned_error

    rng = np.random.default_rng(5)
    frames = []
    for _ in range(2):  # the same peaks, all moved by 3 px, at 2 counts per peak
        image, _ = noise2atom_clean(np.random.default_rng(11), lattice=128, crop=64, positions=(30, 30), variance=(1.5, 1.5))
        frames.append(np.roll(image, 3 * len(frames), axis=1) * 2.0 + 0.02)
    clean = np.stack(frames)
    counts = rng.poisson(clean).astype(np.float64)
    scale = input_scale(counts)
    true, paired, thinned = {}, {}, {}
    for sigma in (0.8, 3.0):
        blur = GaussianBlur(sigma)
        restored = restore_frames(blur, counts, scale)
        gain, offset = fit_output_map(restored, counts)
        true[sigma] = float(np.mean((gain * restored + offset - clean) ** 2))
        paired[sigma] = paired_frame_mse(gain * restored[0] + offset, counts[1])
        thinned[sigma] = thinned_error(blur, counts, scale)
    assert true[0.8] < true[3.0] and thinned[0.8] < thinned[3.0]
    assert paired[0.8] > paired[3.0]  # the paired error would have kept the blur


@pytest.mark.parametrize("variance", [0.6, 1.0, 4.0])
def test_peak_variance_is_read_from_noisy_frames(variance):
    from emdenoise.train.peak_width import peak_variance

    rng = np.random.default_rng(8)
    clean = np.stack([noise2atom_clean(rng, lattice=192, crop=96, positions=(30, 40), variance=(variance, variance))[0]
                      for _ in range(20)])
    noisy = rng.poisson(2.0 * clean + 0.05)
    assert peak_variance(noisy) == pytest.approx(variance, rel=0.25)


def test_a_sharp_series_gets_a_matched_clean_domain():
    from emdenoise.train.noise2atom import preset, train_noise2atom
    from emdenoise.train.peak_width import peak_variance

    rng = np.random.default_rng(9)
    image, _ = noise2atom_clean(rng, lattice=128, crop=64, positions=(20, 30), variance=(0.3, 0.3))
    noisy = rng.poisson(np.broadcast_to(4.0 * image + 0.1, (12, 64, 64))).astype(np.float64)
    config = preset("tiny", match_peak_width=True, warmup_steps=2, warmup_loss="l2", steps=4)
    trained = train_noise2atom(noisy, config, held_out=(0, 1))
    low, high = trained.clean_variance
    assert high < 1.0 and high == pytest.approx(2.5 * low, rel=0.02)  # [v / 2, 1.25 v], v from the frames
    assert 0.5 * peak_variance(noisy) == pytest.approx(low, rel=0.2)
    assert trained.warmup_sigma == pytest.approx(np.sqrt(high), abs=1e-2)
    assert trained.steps == 4 and np.isfinite([h["thinned_mse"] for h in trained.history]).all()
    with pytest.raises(UserError, match="warmup_loss"):
        preset("tiny", warmup_loss="l3")


# -- the job API on a real server ---------------------------------------------------------
def test_training_job_end_to_end_on_a_real_server(env, tmp_path):
    clean, noisy = stem_series()
    server = Server(env, mode="guard")  # the server would fail if it imported torch
    try:
        with RemoteClient(server.address) as client:
            job = client.training.start(noisy, "n2a-test-series", gain=1.0, offset=0.0, preset="tiny",
                                        series_name="synthetic peaks", frame_count=len(noisy))
            assert job["job_id"] and job["state"] in ("queued", "running")
            events = list(client.training.watch(job["job_id"]))
            progress = [e for e in events if e["kind"] == "progress"]
            assert events[-1]["state"] == "done", events[-1]
            assert [e["step"] for e in progress][-1] == 4 and all(e["total_steps"] == 4 for e in progress)
            scored = [e for e in progress if e["css"] is not None]
            assert scored and all(0 < e["css"] <= 1 and np.isfinite(e["paired_mse"]) for e in scored)
            assert all(np.isfinite(e["thinned_mse"]) for e in scored)
            assert all({"critic", "gan", "cycle", "lfc"} <= set(e["losses"]) for e in progress)
            cards = {card["id"]: card for card in client.list_models()}
            card = cards["n2a-test-series"]
            assert card["task"] == "denoise" and card["modality"] == "stem" and card["global"] is True
            assert card["training_data"]["series"] == "synthetic peaks" and card["training_data"]["frames"] == 12
            assert card["training_data"]["dose_counts_per_px"] == pytest.approx(float(noisy.mean()), rel=1e-5)
            assert card["training"]["steps_run"] == 4 and card["training"]["wall_seconds"] > 0
            result = list(client.denoise(noisy[:3], "n2a-test-series", gain=1.0, offset=0.0))
            assert len(result) == 3 and result[0].shape == noisy[0].shape and np.isfinite(result[0]).all()
            assert (Path(env["EMDENOISE_MODELS"]) / "n2a-test-series" / "model.onnx").stat().st_size < 16 << 20
            with pytest.raises(InvalidInput, match="already exists"):
                client.training.start(noisy, "n2a-test-series", gain=1.0, offset=0.0, preset="tiny")
            with pytest.raises(InvalidInput, match="at least 10 frames"):
                client.training.start(noisy[:5], "n2a-test-short", gain=1.0, offset=0.0, preset="tiny")
    finally:
        server.stop()


def test_cancel_and_restart_mid_job_are_reported(env):
    _, noisy = stem_series()
    server = Server(env, mode="guard")
    try:
        with RemoteClient(server.address) as client:
            long = {"steps": 100000}
            job = client.training.start(noisy, "n2a-test-cancel", gain=1.0, offset=0.0, preset="tiny", settings=long)
            with pytest.raises(UserError, match="already running"):  # at most 1 job at once (--max-training-jobs)
                client.training.start(noisy, "n2a-test-other", gain=1.0, offset=0.0, preset="tiny")
            for event in client.training.watch(job["job_id"]):
                if event["kind"] == "progress":
                    break
            assert client.training.cancel(job["job_id"])["job_id"] == job["job_id"]
            final = list(client.training.watch(job["job_id"]))[-1]
            assert final["state"] == "cancelled" and "cancelled" in final["message"]
            assert not (Path(env["EMDENOISE_MODELS"]) / "n2a-test-cancel").exists()

            job = client.training.start(noisy, "n2a-test-restart", gain=1.0, offset=0.0, preset="tiny", settings=long)
            for event in client.training.watch(job["job_id"]):
                if event["kind"] == "progress":
                    first_step = event["step"]
                    break
        events = Path(env["EMDENOISE_JOBS"]) / job["job_id"] / "events.jsonl"
        with RemoteClient(server.address) as client:  # the first client is gone; the job goes on
            written = max(json.loads(line).get("step", 0) for line in events.read_text().splitlines())
            later = next(e for e in client.training.watch(job["job_id"])
                         if e["kind"] == "progress" and e["step"] > max(written, first_step))
            assert later["state"] == "" and later["eta"] >= 0
            assert {j["job_id"]: j for j in client.training.jobs()}[job["job_id"]]["state"] == "running"
        worker = json.loads((Path(env["EMDENOISE_JOBS"]) / job["job_id"] / "state.json").read_text())["pid"]
        server.kill()  # the server dies mid-job
        wait_for(lambda: not pid_alive(worker), timeout=30)  # the orphaned worker stops by itself
    finally:
        server.stop()
    server = Server(env, mode="guard")
    try:
        with RemoteClient(server.address) as client:
            jobs = {j["job_id"]: j for j in client.training.jobs()}
            assert jobs[job["job_id"]]["state"] == "failed"
            assert "start the training again" in jobs[job["job_id"]]["message"]
            final = list(client.training.watch(job["job_id"]))[-1]
            assert final["state"] == "failed"
    finally:
        server.stop()


def test_without_torch_the_server_answers_failed_precondition(env):
    import grpc

    _, noisy = stem_series()
    server = Server(env, mode="absent")
    try:
        with RemoteClient(server.address) as client:
            request = pb.TrainSeriesRequest(options=pb.TrainSeriesOptions(model_id="n2a-x-y", preset="tiny"))
            with pytest.raises(grpc.RpcError) as raw:
                client.stub.StartTraining(iter([request]))
            assert raw.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "pip install 'emdenoise[train]'" in raw.value.details()
            assert len(client.list_models()) > 0  # the server itself keeps serving
    finally:
        server.stop()


def test_train_series_cli_embedded_prints_progress_and_registers_the_model(env, tmp_path, capsys):
    _, noisy = stem_series()
    stack = tmp_path / "series.tif"
    tifffile.imwrite(stack, noisy.astype(np.uint16), imagej=True, metadata={"axes": "TYX"})
    assert main(["train-series", str(stack), "--name", "n2a-cli-test", "--preset", "tiny",
                 "--gain", "1", "--offset", "0"]) == 0
    out = capsys.readouterr().out
    assert "step 4/4" in out and "held-out CSS" in out and "done: model n2a-cli-test is ready" in out
    assert main(["denoise", str(stack), "-o", str(tmp_path / "out"), "--model", "n2a-cli-test"]) == 0
    denoised = tifffile.imread(next((tmp_path / "out").glob("*n2a-cli-test*.tif")))
    assert denoised.shape == noisy.shape

    uneven = tmp_path / "uneven.tif"
    with tifffile.TiffWriter(uneven) as tif:
        for i, frame in enumerate(noisy):
            tif.write((frame if i != 7 else frame[:48]).astype(np.uint16))
    assert main(["train-series", str(uneven), "--name", "n2a-cli-uneven", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emdenoise: error:") and ("different sizes" in err or "equal frames" in err)
    assert "Traceback" not in err


def test_bench_series_trains_noise2atom_and_scores_psnr_against_the_truth(env, tmp_path, capsys):
    clean, noisy = stem_series()
    stack, truth = tmp_path / "noisy.tif", tmp_path / "clean.tif"
    tifffile.imwrite(stack, noisy)
    tifffile.imwrite(truth, np.broadcast_to(clean, noisy.shape).astype(np.float32))
    out = tmp_path / "bench"
    assert main(["bench", "series", "--stack", str(stack), "--truth", str(truth), "--gain", "1", "--offset", "0",
                 "--baselines", "unfiltered,gaussian_3x3", "--train", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Method | PSNR (dB) | SSIM | CSS | paired MSE" in printed
    result = json.loads((out / "series.json").read_text())
    rows = {row["key"]: row for row in result["methods"]}
    model = result["trained"]["model_id"]
    # "gaussian" is bench series' tuned Gaussian (issue 17: every benchmark has tuned classical rows)
    assert set(rows) == {"unfiltered", "gaussian_3x3", "gaussian", model} and result["trained"]["steps_run"] == 4
    from emdenoise.metrics import psnr

    expected = np.mean([psnr(frame, clean) for frame in noisy])  # the Unfiltered row is the raw frames
    assert rows["unfiltered"]["psnr_mean"] == pytest.approx(expected, rel=1e-9)
    assert all(np.isfinite(row["psnr_mean"]) and 0 < row["css"] <= 1 for row in rows.values())
    assert (out / "models" / model / "card.json").is_file()
    assert not (Path(env["EMDENOISE_MODELS"]) / model).exists()  # the benchmark's model stays in its folder
