"""Inference cost (paper 003, Table 3 "Inf. Time (ms)"): single-image wall times in interleaved
rounds on a fixed number of CPU threads, and FLOPs per image (independent of the machine's load)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from affectlab.config import RunConfig, seed_everything
from affectlab.models.poster import ABLATION_ROWS, PosterConfig, PosterModel, ablation_configs

from .config import IMAGE_SIZE, ChapterConfig

if TYPE_CHECKING:
    from .experiments import RowRun


def measure_inference_times(models: Sequence[nn.Module], device: torch.device, repeats: int, warmup: int = 3,
                            seed: int = 0) -> list[np.ndarray]:
    """Wall times (ms, one array of ``repeats`` per model) of one 112-px image through each model
    (evaluation mode, no gradients).

    The models are timed in interleaved rounds (each round times every model once, starting from a
    different model), so a change of load on a shared machine hits every model alike. The paper
    reports the mean of 1000 runs on an RTX 3090; the median resists other jobs' bursts. CUDA work
    is synchronised before each clock read.
    """
    if repeats < 1 or warmup < 0 or not models:
        raise ValueError(f"measure_inference_times: need models, repeats >= 1 and warmup >= 0; got "
                         f"{len(models)} model(s), repeats={repeats}, warmup={warmup}")
    image = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed)).to(device)
    modes = [m.training for m in models]
    times: list[list[float]] = [[] for _ in models]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    try:
        with torch.inference_mode():
            for model in models:
                model.eval()
                for _ in range(warmup):
                    model(image)
            for round_ in range(repeats):
                for k in range(len(models)):
                    i = (round_ + k) % len(models)
                    sync()
                    start = time.perf_counter()
                    models[i](image)
                    sync()
                    times[i].append(time.perf_counter() - start)
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)
    return [1000.0 * np.asarray(t) for t in times]


def time_inference(model: nn.Module, device: torch.device, repeats: int, warmup: int = 3, seed: int = 0) -> float:
    """Median wall time (ms) of one 112-px image through ``model`` (see :func:`measure_inference_times`)."""
    return float(np.median(measure_inference_times([model], device, repeats, warmup, seed)[0]))


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """Run the block on ``n`` CPU threads (``torch.set_num_threads``), then restore the previous count."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"cpu_threads: n must be an int >= 1; got {n!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def count_flops(model: nn.Module) -> int:
    """Floating-point operations of one 112-px image through ``model`` in evaluation mode
    (``torch.utils.flop_counter``: convolutions, matrix products and attention; a multiply-add
    counts 2). Independent of the machine's load, unlike the wall time."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    image = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE, device=device)
    mode = model.training
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(image)
    finally:
        model.train(mode)
    return int(counter.get_total_flops())


def time_rows(runs: Sequence[RowRun], cfg: ChapterConfig, run: RunConfig) -> None:
    """Set ``inference_ms`` (median) and ``inference_samples_ms`` of every run, timed in interleaved
    rounds (:func:`measure_inference_times`) on ``cfg.timing_threads`` threads."""
    with cpu_threads(cfg.timing_threads):
        times = measure_inference_times([r.model for r in runs], run.device, cfg.timing_repeats, cfg.timing_warmup,
                                        run.seed)
    for r, samples in zip(runs, times):
        r.inference_samples_ms = samples
        r.inference_ms = float(np.median(samples))


def time_paper_size_rows(cfg: ChapterConfig, num_classes: int, run: RunConfig,
                         rows: Sequence[str] = ABLATION_ROWS) -> dict[str, np.ndarray]:
    """Single-image wall times (ms) of the paper-size rows (width 1, depth 1), untrained: a forward
    pass costs the same whatever the weights, so this times the architecture the paper's Table 3
    compares, like for like. Interleaved rounds on ``cfg.timing_threads`` threads."""
    configs = ablation_configs(PosterConfig.poster_var(num_classes=num_classes))
    seed_everything(run.seed)
    models = [PosterModel(configs[row]).to(run.device) for row in rows]
    with cpu_threads(cfg.timing_threads):
        times = measure_inference_times(models, run.device, cfg.timing_repeats, cfg.timing_warmup, run.seed)
    return dict(zip(rows, times))

