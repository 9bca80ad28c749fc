"""Training throughput: ``affectlab.train.Trainer.train_step`` against a plain fp32 PyTorch loop.

Both train the same torchvision ResNet-18 (weights=None, 8 classes) on the same random batch
(128 three-channel images) at each input side (48 and 112 px by default). The plain loop is
``zero_grad -> forward -> cross_entropy -> backward -> AdamW.step`` in fp32, contiguous memory.
The trainer step is what :func:`affectlab.train.fit` runs: channels-last, autocast as
``TrainConfig.amp`` resolves it (``auto``: bf16 on CPU only at >= 96 px with AMX), fused AdamW,
gradient clipping and the lr schedule.

Each variant is timed in ``--repeats`` rounds (alternating which goes first), each round one warm-up
step and ``--steps`` timed steps; the result per variant is the median images/s over the rounds
(``ratio``), and ``median_paired_ratio`` is the median of the per-round ratios (the two variants
of a round run back to back, so this one is less sensitive to load from other processes).
Usage::

    python benchmarks/train_throughput.py --out benchmarks/results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision

from affectlab.train import Trainer, TrainConfig, cpu_has_native_bf16


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 112], help="input sides in px")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per variant (median taken); >= 5")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant before the rounds")
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"), help="trainer amp mode")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be >= 5 (the result is a median over repeats)")
    if min(args.sizes) < 32 or args.batch < 1 or args.steps < 1:
        parser.error("--sizes must be >= 32 px (ResNet-18 downsamples 32x), --batch and --steps >= 1")
    return args


def timed_round(step: Callable[[], None], steps: int, batch: int, device: torch.device) -> float:
    """One warm-up step, then ``steps`` timed steps; returns images per second."""
    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def measure_size(side: int, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=args.classes)
    x = torch.randn(args.batch, 3, side, side, device=device)
    y = torch.randint(0, args.classes, (args.batch,), device=device)

    plain_model = copy.deepcopy(model).to(device).train()
    plain_opt = torch.optim.AdamW(plain_model.parameters(), lr=2e-4, weight_decay=0.05)

    def plain_step() -> None:
        plain_opt.zero_grad(set_to_none=True)
        F.cross_entropy(plain_model(x), y).backward()
        plain_opt.step()

    config = TrainConfig(epochs=1, amp=args.amp, channels_last=True, progress=False, tensorboard=False)
    trainer = Trainer(copy.deepcopy(model), config, device=device, steps_per_epoch=10**9, input_side=side)
    batch = {"x": x, "y": y}

    def trainer_step() -> None:
        trainer.train_step(batch)

    variants = {"plain": plain_step, "trainer": trainer_step}
    for step in variants.values():
        for _ in range(args.warmup):
            step()
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            runs[name].append(timed_round(variants[name], args.steps, args.batch, device))
            print(f"  {side}px round {r + 1}/{args.repeats} {name}: {runs[name][-1]:.1f} img/s", file=sys.stderr)
    plain, fast = statistics.median(runs["plain"]), statistics.median(runs["trainer"])
    paired = [t / p for t, p in zip(runs["trainer"], runs["plain"])]
    return {
        "side": side,
        "plain_images_per_s": plain,
        "trainer_images_per_s": fast,
        "ratio": fast / plain,
        "median_paired_ratio": statistics.median(paired),  # per round, back-to-back: robust to load drift
        "trainer_amp": "off" if trainer.amp_dtype is None else str(trainer.amp_dtype).removeprefix("torch."),
        "trainer_channels_last": True,
        "plain_runs": runs["plain"],
        "trainer_runs": runs["trainer"],
    }


def host_info(device: torch.device, threads: int) -> dict:
    cpu_name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu_name,
        "threads": threads,
        "device": str(device),
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu_amx_bf16": cpu_has_native_bf16(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    report = {
        "host": host_info(device, args.threads),
        "setup": {"model": "torchvision resnet18, weights=None", "classes": args.classes, "batch": args.batch,
                  "repeats": args.repeats, "timed_steps_per_round": args.steps, "warmup_steps": args.warmup,
                  "trainer_amp_mode": args.amp, "statistic": "median images/s over repeats"},
        "results": [],
    }
    for side in args.sizes:
        print(f"measuring {side}x{side} ...", file=sys.stderr)
        report["results"].append(measure_size(side, args, device))

    print(f"\nResNet-18, batch {args.batch}, {args.threads} threads, {report['host']['cpu']}")
    print(f"{'side':>6} {'plain fp32 img/s':>17} {'trainer img/s':>14} {'trainer amp':>12} {'ratio':>7} "
          f"{'paired ratio':>13}")
    for row in report["results"]:
        print(f"{row['side']:>6} {row['plain_images_per_s']:>17.1f} {row['trainer_images_per_s']:>14.1f} "
              f"{row['trainer_amp']:>12} {row['ratio']:>6.2f}x {row['median_paired_ratio']:>12.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
