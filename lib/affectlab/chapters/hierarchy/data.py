"""Chapter 02 data: FER2013 with its original labels for Table 1 (paper 001, Sec. 3: NN1 reads
happy/sad/neutral, NN2 all seven classes) and the identity-labelled probing sets of Studies 1-4
(CK+48, generated KDEF-like and DISFA-like faces with planted identity, expression and
valence/arousal; real KDEF/DISFA when the data root has them). Subsets come from
:mod:`affectlab.sampling`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from affectlab import data as datasets
from affectlab.config import RunConfig
from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import FER2013_CLASSES, FERPLUS_CLASSES, category_va
from affectlab.sampling import class_capped_indices, stratified_indices

from .config import NN1_CLASSES, TO_FERPLUS_NAME, ChapterConfig
from .networks import ProbedNetwork, ferplus_predictions, network_logits


def nn1_subset(faces: FaceSet) -> FaceSet:
    """FER2013 faces of NN1's classes (happy, sad, neutral), relabelled 0 happy, 1 sad, 2 neutral.

    ``faces`` must carry the 7 original FER2013 labels (``class_names`` = 0 angry ... 6 neutral),
    as ``load_or_embedded("fer2013", ...)`` returns them. Rows labelled -1 are dropped.
    """
    if tuple(faces.class_names) != FER2013_CLASSES:
        raise ValueError(f"{faces.name}/{faces.split}: nn1_subset needs the 7 FER2013 classes "
                         f"{FER2013_CLASSES}; got {faces.class_names}")
    old = [FER2013_CLASSES.index(c) for c in NN1_CLASSES]
    lookup = torch.full((len(FER2013_CLASSES),), -1, dtype=torch.long)
    lookup[old] = torch.arange(len(NN1_CLASSES))
    keep = torch.nonzero((faces.labels >= 0) & torch.isin(faces.labels, torch.tensor(old))).flatten()
    sub = faces.subset(keep)
    return dataclasses.replace(sub, labels=lookup[sub.labels], class_names=NN1_CLASSES,
                               source=sub.source + "; NN1 classes happy/sad/neutral")


@dataclasses.dataclass
class FERData:
    """FER2013 (original 7 labels) for the networks of Table 1, reduced per profile.

    ``train``/``val``/``test`` map "NN2" (7 classes) and "NN1" (happy, sad, neutral; NN3 is tested
    on it too) to :class:`FaceSet` s: training subset of Training, validation subset of PublicTest,
    test subset of PrivateTest. ``full_sizes`` counts the full splits; ``source`` says where the
    faces came from (the real copy or the generated stand-in); ``private_test`` is the whole
    PrivateTest split (7 classes), on which networks with published weights are scored.
    """

    train: dict[str, FaceSet]
    val: dict[str, FaceSet]
    test: dict[str, FaceSet]
    full_sizes: dict[str, int]
    source: str
    real: bool
    private_test: FaceSet | None = None

    def counts_table(self) -> pd.DataFrame:
        """Images per class in every set used (one row per set)."""
        rows = {}
        for split_name, sets in (("train", self.train), ("validation", self.val), ("test", self.test)):
            for variant, faces in sets.items():
                counts = faces.class_counts()
                rows[f"{variant} {split_name}"] = {**counts, "total": len(faces)}
        return pd.DataFrame(rows).T.fillna(0).astype(int)


def load_fer2013(run: RunConfig, cfg: ChapterConfig) -> FERData:
    """FER2013 Training / PublicTest / PrivateTest with the original 7 labels (``load_or_embedded``:
    the copy under the data root, else the generated stand-in), reduced per ``cfg`` with the run's
    seed: class-capped training subsets and class-proportional validation and test subsets, for
    NN2 (7 classes) and NN1 (happy, sad, neutral)."""
    splits = {s: datasets.load_or_embedded("fer2013", run.data_root, s) for s in ("train", "public_test", "private_test")}
    out: dict[str, dict[str, FaceSet]] = {"train": {}, "val": {}, "test": {}}
    for variant, select in (("NN2", lambda f: f), ("NN1", nn1_subset)):
        train, val, test = (select(splits[s]) for s in ("train", "public_test", "private_test"))
        out["train"][variant] = train.subset(class_capped_indices(train.labels, cfg.train_per_class, run.seed))
        out["val"][variant] = val.subset(stratified_indices(val.labels, cfg.val_size, run.seed))
        out["test"][variant] = test.subset(stratified_indices(test.labels, cfg.test_size, run.seed))
    source = splits["train"].source
    known = splits["private_test"].subset(torch.nonzero(splits["private_test"].labels >= 0).flatten())
    return FERData(train=out["train"], val=out["val"], test=out["test"],
                   full_sizes={s: len(f) for s, f in splits.items()}, source=source,
                   real=source.startswith("real"), private_test=known)


@dataclasses.dataclass
class ProbeSet:
    """Identity-labelled faces to probe: 48x48 greyscale, ``faces.labels`` FERPlus indices
    (-1 = unknown), ``faces.identity`` subjects, ``valence``/``arousal`` per face (planted for
    generated faces, else the circumplex point of the label: ``va_source`` says which)."""

    key: str
    title: str
    faces: FaceSet
    valence: np.ndarray
    arousal: np.ndarray
    va_source: str
    label_source: str

    @property
    def generated(self) -> bool:
        """Generated faces may be shown as images; research datasets' faces never are."""
        return self.faces.source.startswith("generated")

    @property
    def n_subjects(self) -> int:
        return int(len(torch.unique(self.faces.identity)))


def require_generated(probe: ProbeSet) -> None:
    """Refuse to show faces of a research dataset (licence terms): only generated faces are drawn."""
    if not probe.generated:
        raise ValueError(f"{probe.title}: images of research datasets are never shown; use generated faces")


def _first_subjects(faces: FaceSet, k: int | None) -> FaceSet:
    if k is None:
        return faces
    ids = torch.unique(faces.identity)[:k]
    return faces.subset(torch.nonzero(torch.isin(faces.identity, ids)).flatten())


def last_rows_per_subject_expression(identity: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """Row indices (sorted) of the last ``k`` rows of each (subject, expression) pair, in the set's
    own order: for CK+, whose frames of one sequence are near-copies, ``k=1`` keeps the apex frame
    of each sequence."""
    pairs = np.asarray(identity).astype(np.int64) * 1000 + np.asarray(labels).astype(np.int64)
    keep = np.zeros(len(pairs), dtype=bool)
    for pair in np.unique(pairs):
        keep[np.flatnonzero(pairs == pair)[-k:]] = True
    return np.flatnonzero(keep)


def _last_per_subject_expression(faces: FaceSet, k: int | None) -> FaceSet:
    """Keep the last ``k`` rows of each (subject, expression) pair, in the set's own order."""
    if k is None:
        return faces
    return faces.subset(last_rows_per_subject_expression(faces.identity.numpy(), faces.labels.numpy(), k))


def _to_ferplus_labels(faces: FaceSet) -> FaceSet:
    if tuple(faces.class_names) == FERPLUS_CLASSES:
        return faces
    lookup = torch.tensor([FERPLUS_CLASSES.index(TO_FERPLUS_NAME[c]) for c in faces.class_names])
    labels = torch.where(faces.labels >= 0, lookup[faces.labels.clamp_min(0)], faces.labels)
    return dataclasses.replace(faces, labels=labels, class_names=FERPLUS_CLASSES)


def probe_set(key: str, title: str, faces: FaceSet, label_source: str, cfg: ChapterConfig,
              posed: bool = False, sequence: bool = False) -> ProbeSet:
    """Any identity-labelled 48x48 greyscale :class:`FaceSet` (a registry dataset, generated faces,
    or a user's CSV read by :func:`affectlab.data.faces.load_image_csv` with an ``identity`` column) as a
    :class:`ProbeSet`: labels mapped to FERPlus names, reduced per ``cfg`` (``probe_subjects``;
    ``posed``: ``faces_per_subject_expression``; ``sequence``: ``sequence_frame_step``), with its
    valence/arousal (the set's own when it has them, else the circumplex point of the label)."""
    if faces.identity is None:
        raise ValueError(f"{faces.name}/{faces.split}: probing needs identity labels (an 'identity' column "
                         "for a CSV read by load_image_csv)")
    if tuple(faces.images.shape[1:]) != (1, 48, 48):
        raise ValueError(f"{faces.name}/{faces.split}: probing expects 48x48 greyscale faces; got {tuple(faces.images.shape[1:])}")
    faces = _first_subjects(_to_ferplus_labels(faces), cfg.probe_subjects)
    if posed:
        faces = _last_per_subject_expression(faces, cfg.faces_per_subject_expression)
    if sequence and cfg.sequence_frame_step > 1:
        faces = faces.subset(np.arange(0, len(faces), cfg.sequence_frame_step))
    if faces.valence is not None and faces.arousal is not None:
        va, va_source = np.stack([faces.valence.numpy(), faces.arousal.numpy()], 1), "planted by the generator"
    else:
        va, va_source = category_va(faces.labels, FERPLUS_CLASSES).numpy(), "circumplex point of the expression label"
    return ProbeSet(key=key, title=title, faces=faces, valence=va[:, 0].astype(np.float64),
                    arousal=va[:, 1].astype(np.float64), va_source=va_source, label_source=label_source)


def _generated_kdef(cfg: ChapterConfig) -> FaceSet:
    """KDEF-like posed faces (studio light, no pose jitter, 7 expressions): the embedded default,
    ``cfg.generated_kdef_identities`` identities at full intensity, or, with
    ``cfg.kdef_intensities``, every identity x expression x intensity, the circumplex valence and
    arousal scaled by the intensity (so they vary within each category; neutral stays at 0, 0)."""
    from affectlab.data.generate import cached, embedded
    from affectlab.data.generate import faces as gen

    if cfg.generated_kdef_identities is None:
        return embedded("kdef", "frontal")
    n = cfg.generated_kdef_identities
    if cfg.kdef_intensities is None:
        return cached(f"ch02-kdef-{n}", {"n_identities": n, "seed": 2},
                      lambda: gen.generate_kdef_like(n_identities=n, seed=2, name="generated_kdef"))
    levels = tuple(float(v) for v in cfg.kdef_intensities)
    classes = tuple(c for c in FERPLUS_CLASSES if c != "contempt")

    def build() -> FaceSet:
        faces = gen.generate_faces(n, levels, 48, 2, 0.0, classes, noise_sd=0.005, vary_lighting=False,
                                   yaw_views=(0.0,), name="generated_kdef")
        faces.source = faces.source.replace("generated:", "generated (KDEF-like, posed, studio light):", 1)
        return faces

    return cached(f"ch02-kdef-{n}-intensities", {"n_identities": n, "seed": 2, "intensities": list(levels)}, build)


def _generated_disfa(cfg: ChapterConfig) -> FaceSet:
    from affectlab.data.generate import cached, embedded
    from affectlab.data.generate import faces as gen

    if cfg.generated_disfa is None:
        return embedded("disfa", "all")
    ids, seconds, fps = cfg.generated_disfa
    params = {"n_identities": int(ids), "seconds": float(seconds), "fps": float(fps), "seed": 3}
    return cached(f"ch02-disfa-{ids}", params, lambda: gen.generate_disfa_like(**params, name="generated_disfa"))


def load_probe_sets(run: RunConfig, cfg: ChapterConfig, labeller: ProbedNetwork | None = None) -> dict[str, ProbeSet]:
    """The identity-labelled faces of Studies 1-4, keyed ``ckplus``, ``kdef_gen``, ``disfa_gen``
    (plus ``kdef`` and ``disfa`` when the data root holds the real sets).

    - CK+48 (118 subjects, 7 expressions without neutral; all 981 frames unless
      ``cfg.faces_per_subject_expression`` keeps fewer) from the data root, else its generated
      stand-in (``load_or_embedded``): the real identity-labelled faces of Studies 2-3.
    - KDEF-like (at ``cfg.kdef_intensities``) and DISFA-like generated faces, always: their
      identity, expression and V/A are planted, so they are the known ground truth, and the only
      faces this chapter shows.
    - Real DISFA has no expression labels: the paper labelled its frames with ResMaskNet; we label
      them with ``labeller`` (mini-Xception) when given, else they stay unknown (-1).
    """
    sets: dict[str, ProbeSet] = {}
    ck = datasets.load_or_embedded("ckplus", run.data_root, "all")
    real_ck = ck.source.startswith("real")
    sets["ckplus"] = probe_set("ckplus", "CK+48" if real_ck else "CK+48 stand-in (generated)", ck,
                                "CK+ emotion folders" if real_ck else "planted", cfg, posed=True)
    kdef_title = "KDEF-like (generated" + (f", {len(cfg.kdef_intensities)} intensities)" if cfg.kdef_intensities
                                           and cfg.generated_kdef_identities is not None else ")")
    sets["kdef_gen"] = probe_set("kdef_gen", kdef_title, _generated_kdef(cfg), "planted", cfg,
                                 posed=cfg.kdef_intensities is None or cfg.generated_kdef_identities is None)
    sets["disfa_gen"] = probe_set("disfa_gen", "DISFA-like (generated)", _generated_disfa(cfg), "planted", cfg,
                                   sequence=True)
    if run.data_root is not None and datasets.available("kdef", run.data_root):
        sets["kdef"] = probe_set("kdef", "KDEF (frontal)", datasets.load("kdef", run.data_root, "frontal"),
                                  "KDEF file codes", cfg, posed=True)
    if run.data_root is not None and datasets.available("disfa", run.data_root):
        disfa = datasets.load("disfa", run.data_root, "all")
        note = "none (DISFA has no emotion labels)"
        if labeller is not None:
            disfa = dataclasses.replace(disfa, labels=torch.as_tensor(
                ferplus_predictions(labeller, network_logits(labeller, disfa.images))), class_names=FERPLUS_CLASSES)
            note = f"predicted by {labeller.name} (the paper used ResMaskNet)"
        sets["disfa"] = probe_set("disfa", "DISFA", disfa, note, cfg, sequence=True)
    return sets


