"""The paper profile must not rot (foundation issue, item 7): :func:`paper_dry_run` builds the
*paper* configuration of chapter 04 (paper 003 Table 1, FER+ column: the full POSTER++ / POSTER-Var,
IR-50 with 3/4/14 units, token width 768, the full MobileFaceNet landmark branch, SAM over AdamW)
and runs a few optimiser steps on generated faces on the CPU, through the functions the chapter
uses (:func:`~.pretrain.pretrain_landmark_branch`, :func:`~.pretrain.pretrain_image_trunk`,
:func:`~.experiments.run_ablation`)."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from affectlab.config import resolve_run
from affectlab.data.generate.faces import generate_faces

from .config import RESULT_KEYS, chapter_config
from .data import prepare_splits
from .experiments import run_ablation
from .pretrain import pretrain_image_trunk, pretrain_landmark_branch


def _parameters(model: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"


DRY_RUN_BATCH = 2
"""Faces per optimiser step in the dry run (the least a BatchNorm layer trains on)."""


def paper_dry_run(max_steps: int = 1, max_items: int = 4, rows: Sequence[str] = ("full",)) -> dict[str, Any]:
    """Run the paper profile's models for ``max_steps`` optimiser steps (landmark branch:
    ``max_items`` faces per step; image trunk and rows: ``min(max_items, 2)``, the costly steps) on
    generated faces (landmark branch, image trunk, then the ablation rows in ``rows``: by
    default the full POSTER-Var, i.e. the whole POSTER++ network plus every addition; the other rows
    of Table 3 only switch flags off; pass ``rows`` to add them) on the CPU, and predict
    ``max_items`` test faces. Each paper-size row costs about a SAM step of a 43.7 M-parameter
    network (two forward / backward passes), so more rows would take the test past its budget on 2
    cores.

    Only the data sizes shrink (3 generated identities for the landmark branch; one generated
    identity, 8 faces, for the expression rows; trunk / row batches of :data:`DRY_RUN_BATCH`; ``max_items``
    test faces; one epoch of at most ``max_steps`` steps per stage); the networks (224/112-px
    path), optimiser (SAM over AdamW), schedules and loss are the paper profile's. Mixed precision
    is off: the trainer's ``amp="auto"`` would time 8 probe steps per stage on a bf16-capable CPU
    (three quarters of the dry run's time, measured), and the dry run checks that the paper path
    runs, not which precision is faster. Runs go to ``$AFFECTLAB_RUNS``. Returns ``{"profile":
    "paper", "steps": int, "losses": {stage: last training loss}, "models": {stage: description}}``.
    """
    for name, value in (("max_steps", max_steps), ("max_items", max_items)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"paper_dry_run: {name} must be an int >= 1; got {value!r}")
    batch = min(max_items, DRY_RUN_BATCH)
    cfg = chapter_config("paper", landmark_identities=3, landmark_repeats=1, landmark_epochs=1,
                         landmark_batch_size=max_items, train_size=None, valid_size=0, test_size=None, epochs=1,
                         trunk_train_size=None, trunk_epochs=1, batch_size=batch, steps_per_epoch=max_steps,
                         n_seeds=1, extra_datasets=(), amp="off")
    run = resolve_run("paper", None, 0, "cpu")
    train = generate_faces(n_identities=1, intensities=(1.0,), size=cfg.landmark_render_side,
                           seed=cfg.generated_seed + 2, name="generated_dry_run_faces")
    test = generate_faces(n_identities=1, intensities=(1.0,), size=cfg.landmark_render_side,
                          seed=cfg.generated_seed + 3, name="generated_dry_run_faces")
    test = test.subset(torch.arange(min(max_items, len(test))))
    splits = prepare_splits("ferplus", train, None, test, cfg)
    landmarks = pretrain_landmark_branch(cfg, run)
    trunk = pretrain_image_trunk(splits, cfg, run)
    assert trunk is not None  # the paper profile pretrains the trunk
    runs = run_ablation(splits, landmarks, cfg, run, rows=rows, trunk=trunk)
    stages = [("landmark_branch", landmarks.fit, landmarks.model, "MobileFaceNet landmark branch, 68 points"),
              ("image_trunk", trunk.fit, trunk.model, "IR-50 (units 3/4/14) + pooled linear classifier")]
    stages += [(RESULT_KEYS.get(r.row, r.row), r.fit, r.model,
                f"PosterModel width {r.config.width}, depth {r.config.depth}, token width {r.config.embed_dim}, "
                f"{'VICH' if r.config.vich else 'linear'} head, level embedding {r.config.level_embedding}")
               for r in runs]
    steps = min(int(fit.history["steps"].sum()) if "steps" in fit.history else len(fit.history)
                for _, fit, _, _ in stages)
    return {"profile": cfg.profile, "steps": steps, "optimizer": cfg.optimizer,
            "losses": {name: float(fit.history["loss"].iloc[-1]) for name, fit, _, _ in stages},
            "models": {name: f"{text}: {_parameters(model)}" for name, _, model, text in stages}}
