"""Training throughput: ``affectlab.train.Trainer.train_step`` against a plain fp32 PyTorch loop.

Both train the same torchvision ResNet-18 (weights=None, 8 classes) on the same random batch
(128 three-channel images) at each input side (48 and 112 px by default). The plain loop is
``zero_grad -> forward -> cross_entropy -> backward -> AdamW.step`` in fp32, contiguous memory.
The trainer step is what :func:`affectlab.train.fit` runs with the FER recipe
(:func:`affectlab.train.fer_recipe`): channels-last, autocast as ``TrainConfig.amp`` resolves it
(``auto``: bf16 on CPU only where the CPU has native bf16, AVX512-BF16 or AMX, *and* a probe of this
model at this input size measures it >= 10% faster), fused AdamW, the lr schedule.

Targets (issue 13, item 4): trainer >= 1.5x the plain loop at 48 px and >= 2x at 112 px; the JSON
says for each side whether it was met. ``--candidates`` also times, at the first side, each
setting the recipe was chosen from (channels-last, bf16, gradient clipping, batch size, threads,
a ResNet stem without max-pool, the uint8 -> float + batch augmentation data path) and, with
``--compile``, ``torch.compile`` (inductor): its compile time, its step time, and the break-even
step count against eager, to compare with an 8-min budget.

Each variant is timed in ``--repeats`` rounds (alternating which goes first), each round one warm-up
step and ``--steps`` timed steps; the result per variant is the median images/s over the rounds
(``ratio``), and ``median_paired_ratio`` is the median of the per-round ratios (the two variants
of a round run back to back, so this one is less sensitive to load from other processes).
Usage::

    python benchmarks/train_throughput.py --out benchmarks/results.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision

from affectlab.augment import BatchAugment
from affectlab.train import FER_RECIPE_AUGMENT, Trainer, TrainConfig, cpu_info, fer_recipe

TARGETS = {48: 1.5, 112: 2.0}  # issue 13: trainer step vs plain fp32 loop


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
    parser.add_argument("--candidates", action="store_true", help="also time each candidate setting at the first side")
    parser.add_argument("--compile", action="store_true", help="with --candidates: also time torch.compile (slow)")
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

    config = fer_recipe(budget_s=None, epochs=1, amp=args.amp, progress=False)
    trainer = Trainer(copy.deepcopy(model), config, device=device, steps_per_epoch=10**9, input_side=side,
                      example_input=x)
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
        "amp_probe": next((p for p in train_probes() if p["input_shape"] == list(x.shape)), None),
        "target_ratio": TARGETS.get(side),
        "target_met": None if side not in TARGETS else min(fast / plain, statistics.median(paired)) >= TARGETS[side],
        "plain_runs": runs["plain"],
        "trainer_runs": runs["trainer"],
    }


def train_probes() -> list[dict]:
    from affectlab import train

    return list(train._AMP_PROBES.values())


def candidate_rows(side: int, args: argparse.Namespace, device: torch.device,
                   rows: list[dict] | None = None, on_row: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Median images/s (over ``args.repeats`` rounds) of each candidate training setting at ``side``,
    appended to ``rows``; ``on_row(rows)`` after each one."""
    torch.manual_seed(0)
    rows = [] if rows is None else rows

    def resnet(no_maxpool: bool = False) -> torch.nn.Module:
        model = torchvision.models.resnet18(weights=None, num_classes=args.classes)
        if no_maxpool:
            model.maxpool = torch.nn.Identity()
        return model.to(device).train()

    def timed(name: str, step: Callable[[], None], batch: int, threads: int | None = None, **facts) -> None:
        saved = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            step()
            runs = [timed_round(step, args.steps, batch, device) for _ in range(args.repeats)]
        finally:
            torch.set_num_threads(saved)
        rows.append({"candidate": name, "batch": batch, "images_per_s": statistics.median(runs), "runs": runs, **facts})
        print(f"  candidate {name}: {rows[-1]['images_per_s']:.1f} img/s", file=sys.stderr)
        if on_row is not None:
            on_row(rows)

    def step_fn(model, batch: int, dtype, channels_last: bool, clip: bool = False) -> Callable[[], None]:
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-4, fused=True)
        x = torch.randn(batch, 3, side, side, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, args.classes, (batch,), device=device)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
                out = model(x)
            F.cross_entropy(out.float(), y).backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

        return step

    bf16 = torch.bfloat16
    b = args.batch
    timed("fp32 contiguous (plain, fused AdamW)", step_fn(resnet(), b, None, False), b)
    timed("fp32 channels-last", step_fn(resnet(), b, None, True), b)
    timed("bf16 contiguous", step_fn(resnet(), b, bf16, False), b)
    timed("bf16 channels-last (recipe)", step_fn(resnet(), b, bf16, True), b)
    timed("bf16 channels-last + grad clip 1.0", step_fn(resnet(), b, bf16, True, clip=True), b)
    timed("bf16 channels-last, batch 64", step_fn(resnet(), 64, bf16, True), 64)
    timed("bf16 channels-last, batch 256", step_fn(resnet(), 256, bf16, True), 256)
    timed("bf16 channels-last, 1 thread", step_fn(resnet(), b, bf16, True), b, threads=1)
    timed("bf16 channels-last, stem without max-pool", step_fn(resnet(no_maxpool=True), b, bf16, True), b)

    images = torch.randint(0, 256, (b, 1, side, side), dtype=torch.uint8)
    augment = BatchAugment(FER_RECIPE_AUGMENT).train()
    generator = torch.Generator().manual_seed(0)

    def data_step() -> None:
        augment(images.float().div_(255.0), generator).expand(-1, 3, -1, -1).contiguous()

    timed("data path only: uint8 -> float + flip/crop batch augmentation", data_step, b)

    if args.compile:
        model = resnet().to(memory_format=torch.channels_last)
        eager = step_fn(model, b, bf16, True)
        compiled_model = torch.compile(model)
        compiled = step_fn(compiled_model, b, bf16, True)
        start = time.perf_counter()
        compiled()  # compiles forward and backward
        compile_s = time.perf_counter() - start
        timed("bf16 channels-last, torch.compile (inductor)", compiled, b, compile_s=compile_s)
        eager_ips = next(r["images_per_s"] for r in rows if r["candidate"] == "bf16 channels-last (recipe)")
        gain_per_step = b / eager_ips - b / rows[-1]["images_per_s"]
        rows[-1]["break_even_steps"] = compile_s / gain_per_step if gain_per_step > 0 else None
        rows[-1]["pays_within_480_s"] = (gain_per_step > 0 and
                                         (480 - compile_s) / (b / rows[-1]["images_per_s"]) > 480 / (b / eager_ips))
        del eager
    return rows


def write_report(report: dict, out: Path) -> None:
    """Atomic write; called after every side and candidate, so an interrupted run keeps what it measured."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out)


def host_info(device: torch.device, threads: int) -> dict:
    info = cpu_info()
    return {
        "cpu": info["model"],
        "cpu_flags": info["flags"],
        "cpu_native_bf16": info["native_bf16"],
        "threads": threads,
        "device": str(device),
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu_capability": info["torch_cpu_capability"],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "load": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
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
        write_report(report, args.out)
    if args.candidates:
        print(f"candidates at {args.sizes[0]}x{args.sizes[0]} ...", file=sys.stderr)
        report["candidates"] = {"side": args.sizes[0], "rows": []}
        candidate_rows(args.sizes[0], args, device, rows=report["candidates"]["rows"],
                       on_row=lambda rows: write_report(report, args.out))
    report["host"]["load_after"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()

    print(f"\nResNet-18, batch {args.batch}, {args.threads} threads, {report['host']['cpu']}")
    print(f"{'side':>6} {'plain fp32 img/s':>17} {'trainer img/s':>14} {'trainer amp':>12} {'ratio':>7} "
          f"{'paired ratio':>13}")
    for row in report["results"]:
        print(f"{row['side']:>6} {row['plain_images_per_s']:>17.1f} {row['trainer_images_per_s']:>14.1f} "
              f"{row['trainer_amp']:>12} {row['ratio']:>6.2f}x {row['median_paired_ratio']:>12.2f}x"
              f"  target {row['target_ratio']}x: {'met' if row['target_met'] else 'NOT met'}")
    for row in report.get("candidates", {}).get("rows", []):
        print(f"  {row['candidate']:<66} {row['images_per_s']:>8.1f} img/s")
    write_report(report, args.out)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
