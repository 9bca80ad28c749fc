"""Chapter 01 paper-profile dry run (foundation issue, item 7: "the paper profile must not rot").

:func:`paper_dry_run` builds the chapter's *paper* configuration (ResNet-50 students and vision
teacher at 224 px, live KD, Proto-KD, D-Geo; the EEG teacher on 32 px topomaps) and runs a few
optimiser steps on a handful of generated items on the CPU, through the same functions the chapter
calls: :func:`prepare_teacher_data`, :func:`train_eeg_teacher`, :func:`prototype_banks`,
:func:`face_data_from_sets`, :func:`train_students`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from affectlab.config import RunConfig
from affectlab.data.generate.eeg import generate_band_power_set
from affectlab.data.generate.faces import generate_faces
from affectlab.data.taxonomy import FERPLUS_CLASSES

from .config import chapter_config
from .data import face_data_from_sets, prepare_teacher_data
from .experiments import prototype_banks, train_eeg_teacher, train_students

__all__ = ["paper_dry_run"]

_LOSS_COLUMNS = ("loss", "task_loss", "kd", "proto_kd", "dgeo")


def paper_dry_run(max_steps: int = 1, max_items: int = 4) -> dict[str, Any]:
    """Run the paper profile for ``max_steps`` optimiser steps per network on a handful of generated
    faces: ``train_per_class = ceil(max_items / 8)`` training faces per class, ``max(max_items, 8)``
    validation and test faces (a stratified subset keeps one face of each of the 8 classes); the
    EEG teacher sees 3 generated subjects x 4 trials.

    Trains (train-or-load under ``$AFFECTLAB_RUNS``) the EEG teacher, builds both prototype banks,
    trains the paper's separate vision KD teacher and B3 (every loss term: CE, live KD, Proto-KD,
    D-Geo, which is fully on after the scaled late window) with one D-Geo candidate and one seed.
    Returns ``{"profile": "paper", "steps": int, "losses": {name: float}, "models": {name: text}}``
    with the last epoch's mean loss terms of each network. Mixed precision is off (``amp="off"``):
    on a GPU the paper profile's "auto" picks bf16/fp16; on this CPU bf16 would only be probed.
    """
    for name, value in (("max_steps", max_steps), ("max_items", max_items)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"parameter {name} must be an int >= 1; got {value!r}")
    n_classes = len(FERPLUS_CLASSES)
    paper = chapter_config("paper")
    cfg = chapter_config(
        "paper", n_seeds=1, epochs=max_steps, steps_per_epoch=1, teacher_epochs=max_steps, teacher_steps_per_epoch=1,
        train_per_class=math.ceil(max_items / n_classes), val_size=max(max_items, n_classes),
        test_size=max(max_items, n_classes), cross_size=max(max_items, n_classes),
        dgeo_candidates=paper.dgeo_candidates[:1], dgeo_alpha_candidates=(), ablation_seeds=1,
        bootstrap_resamples=10, embedding_points=max(max_items, n_classes), amp="off")
    run = RunConfig(profile="paper", data_root=None, seed=0, device=torch.device("cpu"))
    eeg = generate_band_power_set(n_subjects=3, trials_per_subject=4, seed=0)
    teacher_data = prepare_teacher_data({"deap": (eeg, "generated (paper dry run)")}, cfg)
    teacher = train_eeg_teacher(teacher_data, cfg, run)
    banks = prototype_banks(teacher, cfg, run)
    faces = generate_faces(n_identities=1, intensities=(1.0,), size=48, seed=0, name="ferplus")
    data = face_data_from_sets(faces, faces, faces, {}, {"ferplus": "generated (paper dry run)"}, cfg, run,
                               generated=True)
    students = train_students(data, banks, cfg, run, variants=("B3",), prefix="ch01-paper-dry-run",
                              select_dgeo=False, grid_ablation=False)
    losses: dict[str, float] = {}
    fits = {"eeg_teacher": teacher.fit, "vision_teacher": students.vision_teacher,
            "student_b3": students.runs[("B3", run.seed)]}
    for label, result in fits.items():
        last = result.history.iloc[-1]
        losses.update({f"{label}.{c}": float(last[c]) for c in _LOSS_COLUMNS if c in result.history.columns})
    models = {label: f"{type(result.model).__name__} ({sum(p.numel() for p in result.model.parameters()):,} parameters)"
              for label, result in fits.items()}
    models["student_b3"] += f", {cfg.arch} at {cfg.image_size} px"
    models["vision_teacher"] += f", {cfg.vision_teacher_arch} at {cfg.image_size} px, KD {cfg.kd_source}"
    return {"profile": cfg.profile, "steps": int(len(students.runs[("B3", run.seed)].history)),
            "losses": losses, "models": models}
