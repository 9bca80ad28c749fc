"""The paper profile must not rot (foundation issue, item 7): :func:`paper_dry_run` builds chapter
02's *paper* configuration (paper 001's networks at their true size: the Sharma CNN NN1/NN2/NN3 of
Fig. 1 and the FER2013-trained mini-Xception) and takes a few optimiser steps on a handful of
generated faces on the CPU, through the chapter's own :func:`~.training.build_networks` (train
with :func:`affectlab.train.fit`, BatchNorm recalibration, NN3, mini-Xception) and Table 1's
prediction path."""

from __future__ import annotations

import math

import numpy as np
import torch

from affectlab.config import resolve_run
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FER2013_CLASSES

from .config import NN1_CLASSES, chapter_config
from .data import FERData, nn1_subset
from .tables import table1_predictions
from .training import build_networks, training_steps


def _generated_fer2013(n_items: int, seed: int) -> FERData:
    """``n_items`` random 48x48 faces per split with FER2013 labels cycling over NN1's classes
    (happy, sad, neutral), so NN1 and NN2 both get every face."""
    rng = np.random.default_rng(seed)
    nn1_codes = [FER2013_CLASSES.index(c) for c in NN1_CLASSES]

    def split(name: str) -> FaceSet:
        images = torch.as_tensor(rng.integers(0, 256, size=(n_items, 1, 48, 48), dtype=np.uint8))
        labels = torch.tensor([nn1_codes[i % len(nn1_codes)] for i in range(n_items)])
        return FaceSet(images=images, labels=labels, class_names=FER2013_CLASSES, name="fer2013", split=name,
                       source="generated: paper dry run (random pixels)")

    sets = {s: split(s) for s in ("train", "public_test", "private_test")}
    per_variant = {v: {s: (f if v == "NN2" else nn1_subset(f)) for s, f in sets.items()} for v in ("NN2", "NN1")}
    return FERData(train={v: d["train"] for v, d in per_variant.items()},
                   val={v: d["public_test"] for v, d in per_variant.items()},
                   test={v: d["private_test"] for v, d in per_variant.items()},
                   full_sizes={s: n_items for s in sets}, source=sets["train"].source, real=False,
                   private_test=sets["private_test"])


def paper_dry_run(max_steps: int = 1, max_items: int = 4) -> dict:
    """Run the paper profile's training path for ``max_steps`` optimiser steps per Sharma network
    on ``max_items`` generated faces per split, on the CPU.

    The paper configuration is kept except what the handful of faces forces: one step per epoch
    (``max_steps`` epochs), a batch of at most ``max_items`` faces, BatchNorm recalibrated on those
    faces. Runs always train (``retrain=True``) into the runs folder (``$AFFECTLAB_RUNS``). Returns
    ``{"profile": "paper", "steps": int, "losses": {network: last epoch's training loss},
    "models": {network: description}}``.
    """
    for name, value, least in (("max_steps", max_steps, 1), ("max_items", max_items, 3)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"paper_dry_run: parameter {name} must be an int >= {least}; got {value!r}")
    run = resolve_run("paper", None, 0, "cpu")
    paper = chapter_config("paper")
    batch = min(paper.batch_size, max_items)
    cfg = chapter_config("paper", epochs=max_steps, steps_per_epoch=1, batch_size=batch,
                         batchnorm_recalibration=max_items, val_size=max_items, test_size=max_items)
    fer = _generated_fer2013(max_items, run.seed)
    nets, _ = build_networks(fer, cfg, run, retrain=True)
    steps, losses, models = 0, {}, {}
    for name, net in nets.items():
        table1_predictions(net, fer)  # Table 1's path: logits on the test faces
        params = sum(p.numel() for p in net.model.parameters())
        models[name] = f"{net.description} ({params:,} parameters)"
        if net.fit is not None:
            steps += training_steps(cfg, len(fer.train[name]))
            losses[name] = float(net.fit.history["loss"].iloc[-1])
            if not math.isfinite(losses[name]):
                raise FloatingPointError(f"paper_dry_run: {name}'s training loss is {losses[name]}")
    return {"profile": "paper", "steps": steps, "losses": losses, "models": models}
