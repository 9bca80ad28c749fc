"""Chapter 01 experiments: everything that trains (train-or-load through :func:`affectlab.train.fit`).

1. :func:`train_eeg_teacher`: the EEG teacher regressing V/A from topomaps (Sec. 4.1) on a
   subject-disjoint split.
2. :func:`prototype_banks`: the frozen 5x5 bank and the 7x7 ablation bank (Algorithm 1, Fig. 2),
   saved with SHA-256 and a fingerprint.
3. :func:`train_students`: the vision KD teacher, D-Geo's internals chosen on FERPlus validation,
   every variant x seed, the grid ablation and the run-to-run B0 seeds (Sec. 4.2-4.4, 5.2-5.3,
   Algorithm 2); :func:`student_predictions` caches a checkpoint's logits and features.

Run names (``ch01-<variant>[-g<grid>]-s<seed>``), the run keys (chapter ``01_neurogaze_distill``,
role ``student``, variant, init_seed, faces, proto grid) and the artefact folder are what chapter 02
reads to find these students; keep them stable.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from affectlab.config import ConfigError, RunConfig, config_hash, seed_everything
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FERPLUS_CLASSES
from affectlab.models.resnet_student import FERStudent
from affectlab.models.va_teacher import TopomapVATeacher
from affectlab.fer_teacher import FERTeacher, teacher_logits, train_or_load_fer_teacher
from affectlab.prototypes import build_prototype_bank, coverage, load_prototype_bank, save_prototype_bank
from affectlab.sampling import group_disjoint_split
from affectlab.train import FitResult, Predictions, TensorData, TrainConfig, fer_recipe, fit, predict

from .config import (
    CHAPTER,
    VARIANT_TERMS,
    VARIANTS,
    ChapterConfig,
    DGeoParams,
    artifact_dir,
    student_train_config,
)
from .data import FaceData, TeacherData, face_tensors
from .terms import variant_terms

__all__ = [
    "TeacherRun",
    "train_eeg_teacher",
    "PrototypeBanks",
    "prototype_banks",
    "generated_eeg_bank",
    "StudentRuns",
    "train_students",
    "student_predictions",
    "sec53_sweep",
]


@dataclasses.dataclass
class TeacherRun:
    """The trained EEG teacher: fit result, the subject-disjoint train / validation / test split,
    its validation predictions and features (validation chose the checkpoint and builds the bank,
    Algorithm 1), its test predictions (CCC is reported there), and ``null_test_pred``: the test
    predictions of the same teacher trained on shuffled V/A (None when ``cfg.teacher_null`` is off)."""

    fit: FitResult
    train_idx: np.ndarray
    val_idx: np.ndarray
    val_pred: np.ndarray
    val_features: np.ndarray
    val_va: np.ndarray
    data_source: str
    test_idx: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_pred: np.ndarray | None = None
    test_va: np.ndarray | None = None
    null_test_pred: np.ndarray | None = None
    null_fit: FitResult | None = None


def teacher_split(data: TeacherData, cfg: ChapterConfig, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / validation / test row indices with no subject on two sides, drawn per dataset with
    :func:`affectlab.sampling.group_disjoint_split` (shares ``1 - val - test``, ``teacher_val_fraction``,
    ``teacher_test_fraction`` of each dataset's subjects)."""
    fractions = (1 - cfg.teacher_val_fraction - cfg.teacher_test_fraction, cfg.teacher_val_fraction,
                 cfg.teacher_test_fraction)
    parts: list[list[np.ndarray]] = [[], [], []]
    for name in sorted(set(data.dataset.tolist())):
        rows = np.flatnonzero(data.dataset == name)
        for i, part in enumerate(group_disjoint_split(data.groups[rows], fractions, seed)):
            parts[i].append(rows[part])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)  # type: ignore[return-value]


def fit_eeg_teacher_run(maps: torch.Tensor, va: torch.Tensor, train_idx: np.ndarray, val_idx: np.ndarray,
                        data: TeacherData, cfg: ChapterConfig, run: RunConfig, role: str) -> FitResult:
    """Train (or load) one TopomapVATeacher on rows ``train_idx``, its best epoch by CCC on rows
    ``val_idx`` (Sec. 4.1); ``role`` names the run (paper-style teacher, null, alternatives)."""
    train = TensorData(maps[train_idx], va[train_idx], batch_size=cfg.teacher_batch_size, name="eeg-topomaps/train")
    val = TensorData(maps[val_idx], torch.from_numpy(data.va)[val_idx], batch_size=256, shuffle=False,
                     name="eeg-topomaps/val")
    seed_everything(run.seed)
    model = TopomapVATeacher(n_bands=len(data.bands))
    config = TrainConfig(epochs=cfg.teacher_epochs, lr=cfg.teacher_lr, weight_decay=cfg.teacher_weight_decay,
                         task="regression", monitor="ccc", steps_per_epoch=cfg.teacher_steps_per_epoch, amp=cfg.amp,
                         seed=run.seed, progress=False, tensorboard=True)
    key = {"chapter": CHAPTER, "role": role, "init_seed": run.seed, "source": data.source,
           "va_rules": data.info["V/A rule"].tolist(), "split": "train/val/test subjects"}
    return fit(model, train, val, config, key=key, name=f"ch01-{role.replace('_', '-')}", device=run.device)


def predict_va_in_order(model: torch.nn.Module, maps: torch.Tensor, va: np.ndarray, idx: np.ndarray,
                        run: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """V/A predictions and 256-D features of ``model`` on rows ``idx``, in the order of ``idx``."""
    preds = predict(model, TensorData(maps[idx], torch.from_numpy(va)[idx], batch_size=256, shuffle=False),
                    run.device, task="regression")
    order = np.argsort(preds.index.numpy())
    return preds.outputs.numpy()[order], preds.features.numpy()[order]


def train_eeg_teacher(data: TeacherData, cfg: ChapterConfig, run: RunConfig) -> TeacherRun:
    """Train (or load) :class:`~affectlab.models.va_teacher.TopomapVATeacher` regressing V/A from
    the topomaps (MSE, AdamW lr ``teacher_lr``, cosine) on the training subjects, its checkpoint
    chosen by CCC on the *validation* subjects, scored on separate *test* subjects
    (:func:`teacher_split`). With ``cfg.teacher_null`` the same network is also trained on V/A
    shuffled across training trials (same selection on the real validation labels): its test CCC
    is what a teacher that learned nothing about V/A scores on these subjects."""
    train_idx, val_idx, test_idx = teacher_split(data, cfg, run.seed)
    maps = torch.from_numpy(data.maps)
    va = torch.from_numpy(data.va)
    result = fit_eeg_teacher_run(maps, va, train_idx, val_idx, data, cfg, run, "eeg_teacher")
    val_pred, val_features = predict_va_in_order(result.model, maps, data.va, val_idx, run)
    test_pred, _ = predict_va_in_order(result.model, maps, data.va, test_idx, run)
    null_pred, null_fit = None, None
    if cfg.teacher_null:
        shuffled = va.clone()
        shuffled[train_idx] = va[train_idx][torch.from_numpy(np.random.default_rng(run.seed).permutation(len(train_idx)))]
        null_fit = fit_eeg_teacher_run(maps, shuffled, train_idx, val_idx, data, cfg, run, "eeg_teacher_null")
        null_pred, _ = predict_va_in_order(null_fit.model, maps, data.va, test_idx, run)
    return TeacherRun(fit=result, train_idx=train_idx, val_idx=val_idx, val_pred=val_pred, val_features=val_features,
                      val_va=data.va[val_idx], data_source=data.source, test_idx=test_idx, test_pred=test_pred,
                      test_va=data.va[test_idx], null_test_pred=null_pred, null_fit=null_fit)


@dataclasses.dataclass
class PrototypeBanks:
    """The frozen banks (Algorithm 1): ``main`` (G = 5) and ``ablation`` (G = 7), each a dict with
    ``prototypes`` (K, 256), ``prior`` (K,), ``coverage`` (G, G), ``path`` and ``sha256``."""

    main: dict[str, Any]
    ablation: dict[str, Any]

    def by_grid(self, grid: int) -> dict[str, Any]:
        for bank in (self.main, self.ablation):
            if bank["grid"] == grid:
                return bank
        raise ValueError(f"no prototype bank with grid {grid}; have {self.main['grid']}, {self.ablation['grid']}")


def prototype_banks(teacher: TeacherRun, cfg: ChapterConfig, run: RunConfig, tag: str = "") -> PrototypeBanks:
    """Build (or load, SHA-256 verified) the 5x5 bank and the 7x7 ablation bank from the teacher's
    validation features binned by their V/A labels (Algorithm 1); saved as
    ``prototypes<tag>_<G>x<G>.npz`` with a JSON sidecar (digest + fingerprint) in :func:`artifact_dir`
    (``tag`` tells a second bank of the same run apart, e.g. "-generated-eeg")."""
    banks = []
    # an all-zero ReLU feature has no direction (L2Norm undefined): such trials are left out
    usable = np.linalg.norm(teacher.val_features, axis=1) > 0
    features, va = teacher.val_features[usable], teacher.val_va[usable]
    for grid in (cfg.grid, cfg.ablation_grid):
        fingerprint = {
            "grid": grid,
            "eps": cfg.bank_eps,
            "teacher_config_hash": teacher.fit.config_hash,
            "data_source": teacher.data_source,
            "binned_by": "validation V/A labels (Algorithm 1 line 4)",
            "n_validation": int(usable.sum()),
            "dropped_zero_features": int((~usable).sum()),
            "feature": "TopomapVATeacher penultimate (256-D, ReLU), L2-normalised",
        }
        path = artifact_dir(cfg, run) / f"prototypes{tag}_{grid}x{grid}.npz"
        loaded = None
        if path.exists():
            loaded = load_prototype_bank(path)
            if loaded.fingerprint != json.loads(json.dumps(fingerprint)):
                loaded = None
        if loaded is None:
            protos, prior = build_prototype_bank(features, va, grid=grid, eps=cfg.bank_eps)
            save_prototype_bank(path, protos, prior, fingerprint)
            loaded = load_prototype_bank(path)
        banks.append({"grid": grid, "prototypes": loaded.prototypes, "prior": loaded.prior,
                      "coverage": coverage(va, grid), "path": path, "sha256": loaded.sha256,
                      "fingerprint": loaded.fingerprint})
    return PrototypeBanks(main=banks[0], ablation=banks[1])


def generated_eeg_bank(cfg: ChapterConfig, run: RunConfig) -> tuple[TeacherRun, TeacherData, PrototypeBanks]:
    """Issue 14 item 4: the EEG teacher and its banks on the *generated* band-power sets (DEAP- and
    MAHNOB-shaped, continuous V/A planted per trial, :mod:`affectlab.data.generate.eeg`), whatever
    the run's data root: the known-ground-truth counterpart of a weak real-EEG teacher, so the
    probe can show what Proto-KD does when the prototypes do carry V/A. Same network, splits and
    selection as :func:`train_eeg_teacher` (no shuffled-label null); banks tagged "-generated-eeg"."""
    from .data import load_teacher_eeg, prepare_teacher_data

    data = prepare_teacher_data(load_teacher_eeg(run, generated=True), cfg)
    teacher = train_eeg_teacher(data, dataclasses.replace(cfg, teacher_null=False), run)
    return teacher, data, prototype_banks(teacher, cfg, run, tag="-generated-eeg")


@dataclasses.dataclass
class StudentRuns:
    """All trained students of one face-data setting.

    ``runs[(variant, seed)]`` -> :class:`FitResult`; ``vision_teacher`` the KD teacher's result
    (the first-seed B0 run itself when ``cfg.vision_teacher == "b0"``);
    ``dgeo`` the chosen D-Geo internals, ``dgeo_selection`` the candidates' validation scores and
    ``dgeo_runs`` every candidate run; ``ablation[(grid, seed)]`` the B2 runs with the
    ``ablation_grid`` bank; ``noise[seed]`` the extra B0 runs (``cfg.noise_seeds``) that measure
    run-to-run variation; ``seeds`` used.
    """

    runs: dict[tuple[str, int], FitResult]
    vision_teacher: FitResult
    dgeo: DGeoParams
    dgeo_selection: pd.DataFrame
    ablation: dict[tuple[int, int], FitResult]
    seeds: tuple[int, ...]
    variants: tuple[str, ...]
    prefix: str
    dgeo_runs: dict[str, FitResult] = dataclasses.field(default_factory=dict)
    noise: dict[int, FitResult] = dataclasses.field(default_factory=dict)
    warm_start: FitResult | None = None
    kd_teacher_description: str = ""
    kd_logits: torch.Tensor | None = None

    def require(self, variant: str) -> None:
        """Raise a clear error unless ``variant`` was trained (at least at the first seed)."""
        if variant not in VARIANTS or (variant, self.seeds[0]) not in self.runs:
            raise ValueError(f"parameter variant: {variant!r} was not trained here; trained variants are "
                             f"{self.variants}")

    def seeds_of(self, variant: str) -> tuple[int, ...]:
        """The seeds ``variant`` was trained at (all of :attr:`seeds` or the first only, see
        :meth:`ChapterConfig.variant_seeds`)."""
        return tuple(s for s in self.seeds if (variant, s) in self.runs)

    def histories(self, variant: str) -> list[pd.DataFrame]:
        return [self.runs[(variant, s)].history for s in self.seeds if (variant, s) in self.runs]

    def runs_table(self) -> pd.DataFrame:
        """One row per distinct trained run (main variants, D-Geo candidates, grid ablation,
        run-to-run B0 seeds): loaded from cache or trained, best epoch, best validation macro-F1 (%)
        and training minutes."""
        labelled = {**({"shared CE warm start": self.warm_start} if self.warm_start is not None else {}),
                    **{f"{v} seed {s}": r for (v, s), r in self.runs.items()},
                    **{f"B3 candidate {k}": r for k, r in self.dgeo_runs.items()},
                    **{f"B2 {g}x{g} bank seed {s}": r for (g, s), r in self.ablation.items()},
                    **{f"B0 seed {s} (run-to-run)": r for s, r in self.noise.items()}}
        unique: dict[Any, tuple[str, FitResult]] = {}
        for label, result in labelled.items():
            unique.setdefault(result.run_dir, (label, result))
        return pd.DataFrame(
            [{"run": label, "loaded from cache": r.loaded_from_cache, "best epoch": r.best_epoch,
              "steps": int(r.history["steps"].sum()) if "steps" in r.history else None,
              "val macro-F1 (%)": 100 * r.best_value, "minutes": r.history["seconds"].sum() / 60}
             for label, r in unique.values()]
        ).set_index("run")


def _student_model(arch: str, seed: int, head_input_scale: float | None = None) -> FERStudent:
    seed_everything(seed)
    return FERStudent(arch=arch, n_classes=len(FERPLUS_CLASSES), proj_dim=256, in_channels=1,
                      head_input_scale=head_input_scale)


def _train_vision_teacher(data: FaceData, cfg: ChapterConfig, run: RunConfig, prefix: str) -> FitResult:
    """The KD teacher (Sec. 4.3 "a vision teacher"; unnamed in the paper): the student's
    architecture (``vision_teacher_arch``) trained on the FERPlus crowd-vote distributions
    (soft-target CE, Barsoum et al. 2016's best scheme) with the same recipe, so its logits carry
    the annotators' confusions. Falls back to hard labels with label smoothing when a set has no
    vote distributions (generated faces)."""
    soft = data.train.soft_labels is not None
    train = face_tensors(data.train, data, cfg, train=True)
    val = face_tensors(data.val, data, cfg, train=False)
    seed = run.seed + 1000
    config = student_train_config(cfg, seed, target="soft" if soft else "hard", label_smoothing=0.0 if soft else cfg.label_smoothing)
    key = {"chapter": CHAPTER, "role": "vision_teacher", "arch": cfg.vision_teacher_arch, "init_seed": seed,
           "faces": data.tag}
    key["head_input_scale"] = cfg.head_input_scale
    return fit(_student_model(cfg.vision_teacher_arch, seed, cfg.head_input_scale), train, val, config, key=key,
               name=f"{prefix}-vision-teacher", device=run.device)


def _train_warm_start(data: FaceData, cfg: ChapterConfig, run: RunConfig, prefix: str) -> FitResult:
    """The shared CE warm start of the fast recipe (``cfg.warm_start_budget_s``): B0's objective (CE
    with label smoothing and mild class weights, no extra terms) under :func:`affectlab.train.fer_recipe`
    (one-cycle laid over the wall-clock budget) from the first seed's initial weights; checkpoint
    by FERPlus-valid macro-F1. Every variant and seed continues from its best weights."""
    train = face_tensors(data.train, data, cfg, train=True)
    val = face_tensors(data.val, data, cfg, train=False)
    config = fer_recipe(budget_s=cfg.warm_start_budget_s, seed=run.seed, progress=False, tensorboard=True,
                        label_smoothing=cfg.label_smoothing, class_weights=data.class_weights, amp=cfg.amp,
                        steps_per_epoch=None)
    key = {"chapter": CHAPTER, "role": "warm_start", "arch": cfg.arch, "init_seed": run.seed, "faces": data.tag,
           "head_input_scale": cfg.head_input_scale, "image_size": cfg.image_size}
    return fit(_student_model(cfg.arch, run.seed, cfg.head_input_scale), train, val, config, key=key,
               name=f"{prefix}-warm-start", device=run.device)


def _cached_teacher_logits(teacher: FitResult, data: FaceData, cfg: ChapterConfig, run: RunConfig) -> torch.Tensor:
    """The teacher's logits for every training row (un-augmented images), in row order."""
    plain = face_tensors(data.train, data, cfg, train=False)
    preds = predict(teacher.model, plain, run.device, task="classification")
    logits = torch.empty_like(preds.outputs)
    logits[preds.index] = preds.outputs
    return logits


def _train_one_student(
    variant: str, seed: int, data: FaceData, bank: Mapping[str, Any], dgeo: DGeoParams | None,
    teacher: FitResult | None, teacher_logits: torch.Tensor | None, cfg: ChapterConfig, run: RunConfig,
    prefix: str, warm_start: FitResult | None = None,
) -> FitResult:
    """One student run (train-or-load); the key covers every loss-term setting the tensors don't.
    With ``warm_start`` the student starts from its best weights (the seed then changes only data
    order and augmentation)."""
    uses_kd = "kd" in VARIANT_TERMS[variant]
    live = cfg.kd_source == "live"
    if uses_kd and (teacher is None or (not live and teacher_logits is None)):
        raise ValueError(f"variant {variant} uses KD but no vision teacher (or its cached logits) was given")
    extras = {"teacher_logits": teacher_logits} if (uses_kd and not live) else None
    train = face_tensors(data.train, data, cfg, train=True, extras=extras)
    val = face_tensors(data.val, data, cfg, train=False)
    if live and uses_kd:
        teacher.model.to(run.device)
    steps = train.num_batches(train=True)
    if cfg.steps_per_epoch is not None:
        steps = min(steps, cfg.steps_per_epoch)
    terms = variant_terms(variant, cfg, bank["prototypes"], bank["prior"], dgeo,
                          teacher=teacher.model if (live and uses_kd) else None, steps_per_epoch=steps)
    config = student_train_config(cfg, seed, class_weights=data.class_weights)
    if "dgeo" in terms and config.budget_s is not None:
        raise ConfigError("D-Geo's late window needs a known step count; train D-Geo variants by epochs "
                          "(TrainConfig.budget_s=None), not by a wall-clock budget")
    key = {
        "chapter": CHAPTER, "role": "student", "variant": variant, "arch": cfg.arch, "init_seed": seed,
        "faces": data.tag, "head_input_scale": cfg.head_input_scale, "image_size": cfg.image_size,
        "warm_start": None if warm_start is None else warm_start.config_hash,
        "kd": None if not uses_kd else {"weight": cfg.kd_weight, "kind": cfg.kd_kind, "source": cfg.kd_source,
                                        "T": cfg.full_kd_temperature if variant == "Full" else cfg.kd_temperature,
                                        "teacher": teacher.config_hash},
        "proto": None if "proto_kd" not in terms else {"weight": cfg.proto_weight, "tau": cfg.proto_tau,
                                                       "bank_sha256": bank["sha256"], "grid": bank["grid"]},
        "dgeo": None if "dgeo" not in terms else {
            **dataclasses.asdict(dgeo), "weight": cfg.geo_weight, "window": [cfg.geo_start, cfg.geo_end],
            "paper_epochs": cfg.geo_paper_epochs, "positives": list(cfg.positive_classes), "ramp": "per step"},
    }
    grid_tag = "" if bank["grid"] == cfg.grid else f"-g{bank['grid']}"
    model = _student_model(cfg.arch, seed, cfg.head_input_scale)
    if warm_start is not None:
        model.load_state_dict({k: v.detach().clone() for k, v in warm_start.model.state_dict().items()})
    return fit(model, train, val, config, key=key, extra_terms=terms,
               name=f"{prefix}-{variant}{grid_tag}-s{seed}", device=run.device)


def train_students(
    data: FaceData,
    banks: PrototypeBanks,
    cfg: ChapterConfig,
    run: RunConfig,
    variants: Sequence[str] = VARIANTS,
    prefix: str = "ch01",
    select_dgeo: bool = True,
    grid_ablation: bool = True,
) -> StudentRuns:
    """Train (or load) everything the tables need, in this order:

    0. with ``cfg.warm_start_budget_s``, the shared CE warm start every student continues from;
    1. the vision KD teacher and its cached logits: the shared FERPlus teacher
       (``cfg.vision_teacher="fer_teacher"``, :mod:`affectlab.fer_teacher`), the first-seed B0
       (``"b0"``) or a separate network on the vote distributions (:func:`_train_vision_teacher`);
    2. D-Geo internals: B3 with each of ``cfg.dgeo_candidates`` (sigma_max, m) on the first seed,
       then the best one with each of ``cfg.dgeo_alpha_candidates`` (alpha_var, alpha_mar); the
       best FERPlus-validation macro-F1 wins (the chosen run is B3's first-seed run, reused by
       train-or-load); ``select_dgeo=False`` takes the first candidate;
    3. every variant at its seeds (:meth:`ChapterConfig.variant_seeds`; best checkpoint by
       validation macro-F1);
    4. the grid ablation: B2 with the ``ablation_grid`` bank on ``cfg.ablation_seeds`` seeds;
    5. ``cfg.noise_seeds`` extra B0 seeds (the run-to-run spread of the recipe).
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {VARIANTS}")
    seeds = cfg.seeds(run.seed)
    main = banks.main
    runs: dict[tuple[str, int], FitResult] = {}
    warm = _train_warm_start(data, cfg, run, prefix) if cfg.warm_start_budget_s is not None else None
    needs_logits = cfg.kd_source == "cached" and any("kd" in VARIANT_TERMS[v] for v in variants)
    if cfg.vision_teacher == "fer_teacher":
        if cfg.kd_source != "cached":
            raise ConfigError("ChapterConfig.kd_source must be 'cached' with vision_teacher='fer_teacher' (the shared "
                              "teacher reads 3-channel un-normalised 48 px inputs, not the student's batches)")
        shared: FERTeacher = train_or_load_fer_teacher(run, budget_s=cfg.kd_teacher_budget_s, seed=run.seed)
        teacher, description = shared.fit, f"shared FERPlus teacher (affectlab.fer_teacher): {shared.description}"
        logits = teacher_logits(shared, data.train, run.device) if needs_logits else None
    else:
        if cfg.vision_teacher == "b0":
            teacher = runs[("B0", seeds[0])] = _train_one_student("B0", seeds[0], data, main, None, None, None, cfg,
                                                                  run, prefix, warm)
            description = "the first-seed B0 student (self-distillation)"
        else:
            teacher = _train_vision_teacher(data, cfg, run, prefix)
            description = f"a separate {cfg.vision_teacher_arch} trained on the FERPlus vote distributions"
        logits = _cached_teacher_logits(teacher, data, cfg, run) if needs_logits else None
    rows: list[dict[str, Any]] = []
    dgeo_runs: dict[str, FitResult] = {}
    needs_dgeo = any("dgeo" in VARIANT_TERMS[v] for v in variants)
    best: tuple[float, DGeoParams] | None = None

    def try_candidate(params: DGeoParams, stage: str) -> None:
        nonlocal best
        result = _train_one_student("B3", seeds[0], data, main, params, teacher, logits, cfg, run, prefix, warm)
        value = float(result.best_value) if result.best_value is not None else float("nan")
        dgeo_runs[params.label] = result
        rows.append({"stage": stage, **dataclasses.asdict(params), "val macro-F1 (best epoch)": value,
                     "best epoch": result.best_epoch, "run": result.run_dir.name})
        if best is None or value > best[0]:
            best = (value, params)

    if needs_dgeo:
        for params in (cfg.dgeo_candidates if select_dgeo else cfg.dgeo_candidates[:1]):
            try_candidate(params, "sigma_max, m")
        if select_dgeo:
            for alpha_var, alpha_mar in cfg.dgeo_alpha_candidates:
                params = dataclasses.replace(best[1], alpha_var=float(alpha_var), alpha_mar=float(alpha_mar))
                if params.label not in dgeo_runs:
                    try_candidate(params, "alpha_var, alpha_mar")
    chosen = best[1] if best is not None else cfg.dgeo_candidates[0]
    selection = pd.DataFrame(rows)
    if len(selection):
        selection["chosen"] = [DGeoParams(r["sigma_max"], r["margin"], r["alpha_var"], r["alpha_mar"]) == chosen
                               for r in rows]
    for variant in variants:
        for seed in cfg.variant_seeds(variant, run.seed):
            if (variant, seed) not in runs:
                runs[(variant, seed)] = _train_one_student(variant, seed, data, main, chosen, teacher, logits,
                                                           cfg, run, prefix, warm)
    ablation: dict[tuple[int, int], FitResult] = {}
    if grid_ablation and cfg.grid_ablation and "B2" in variants:
        for seed in seeds[: cfg.ablation_seeds]:
            ablation[(banks.ablation["grid"], seed)] = _train_one_student(
                "B2", seed, data, banks.ablation, chosen, teacher, logits, cfg, run, prefix, warm)
    noise: dict[int, FitResult] = {}
    if "B0" in variants:
        for seed in range(seeds[-1] + 1, seeds[-1] + 1 + cfg.noise_seeds):
            noise[seed] = _train_one_student("B0", seed, data, main, None, None, None, cfg, run, prefix, warm)
    return StudentRuns(runs=runs, vision_teacher=teacher, dgeo=chosen, dgeo_selection=selection,
                       ablation=ablation, seeds=seeds, variants=tuple(variants), prefix=prefix,
                       dgeo_runs=dgeo_runs, noise=noise, warm_start=warm, kd_teacher_description=description,
                       kd_logits=logits)


def sec53_sweep(students: StudentRuns, data: FaceData, banks: PrototypeBanks, cfg: ChapterConfig,
                run: RunConfig) -> pd.DataFrame:
    """Sec. 5.3 sensitivity, on FERPlus *validation* only: B3 (first seed, the chosen D-Geo
    internals, the same warm start and KD teacher) with each Proto-KD weight of
    ``cfg.sweep_proto_weights`` (the paper: 0, 0.10, 0.12, 0.15), and with ``cfg.sweep_dgeo_early``
    D-Geo switched on from epoch 0 (the same ramp length, starting at 0) instead of late. The run
    at the chapter's own weight is B3 itself (reused). One row per run: best-epoch validation
    macro-F1 and accuracy (%), the best epoch and whether it was loaded from the runs folder."""
    seed = students.seeds[0]
    if ("B3", seed) not in students.runs:
        raise ValueError("sec53_sweep needs B3 trained (train_students with variant B3)")
    if cfg.kd_source == "cached" and students.kd_logits is None:
        raise ValueError("sec53_sweep: the StudentRuns carry no cached KD logits")
    teacher = students.vision_teacher
    settings: list[tuple[str, ChapterConfig]] = [
        (f"lambda_proto = {w:g}, D-Geo late", dataclasses.replace(cfg, proto_weight=float(w)))
        for w in cfg.sweep_proto_weights]
    if cfg.sweep_dgeo_early:
        length = cfg.geo_end - cfg.geo_start
        settings.append((f"lambda_proto = {cfg.proto_weight:g}, D-Geo from epoch 0",
                         dataclasses.replace(cfg, geo_start=0.0, geo_end=length)))
    rows = []
    for label, setting in settings:
        if setting == cfg:
            result = students.runs[("B3", seed)]
        else:
            result = _train_one_student("B3", seed, data, banks.main, students.dgeo, teacher, students.kd_logits,
                                        setting, run, students.prefix, students.warm_start)
        best = result.history.loc[result.history["epoch"] == result.best_epoch].iloc[0]
        rows.append({"setting": label, "val macro-F1 (%)": 100 * float(best["val_macro_f1"]),
                     "val accuracy (%)": 100 * float(best["val_accuracy"]), "best epoch": result.best_epoch,
                     "loaded from cache": result.loaded_from_cache, "run": result.run_dir.name})
    return pd.DataFrame(rows).set_index("setting")


def student_predictions(result: FitResult, faces: FaceSet, data: FaceData, cfg: ChapterConfig,
                        run: RunConfig) -> Predictions:
    """Logits and 256-D features of the best checkpoint on ``faces`` (row order), cached beside the
    checkpoint as ``predictions-<fingerprint>.pt`` so a rerun does not recompute them."""
    td = face_tensors(faces, data, cfg, train=False)
    tag = config_hash({"data": td.describe(), "best": result.best_epoch, "hash": result.config_hash})
    path = result.run_dir / f"predictions-{tag}.pt"
    if path.exists():
        state = torch.load(path, weights_only=True)
        return Predictions(state["outputs"], state["labels"], state["features"], state["index"], "logits")
    preds = predict(result.model, td, run.device, task="classification")
    order = torch.argsort(preds.index)
    out = Predictions(preds.outputs[order], preds.labels[order], preds.features[order], preds.index[order], "logits")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"outputs": out.outputs, "labels": out.labels, "features": out.features, "index": out.index}, tmp)
    os.replace(tmp, path)
    return out

