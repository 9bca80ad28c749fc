"""Generated face images with known ground truth: the book's embedded stand-in for FER datasets.

Faces are rendered from the ICT-FaceKit model shipped with the package
(:meth:`affectlab.facemodel.FaceModel.packaged`) with :func:`affectlab.render.render_face`, so the
same seed gives the same pixels on every machine.

Expressions. Each category is a FACS prototype (Ekman & Friesen 1978, *Facial Action Coding
System*; the EMFACS emotion predictions as tabulated by Ekman, Friesen & Hager 2002 and Matsumoto &
Ekman 2008), given as action-unit (AU) intensities in :data:`EMOTION_AUS`, and each AU is turned
into ICT's ARKit-style blendshapes with ICT-FaceKit's own AU table (:data:`AU_BLENDSHAPES`, from the
ICT-FaceKit README "closest relation to FACS units"):

============  ======================================================================
neutral       no action
happiness     AU6 cheek raiser + AU12 lip-corner puller (+ AU7 slight, AU25/26 lips apart)
surprise      AU1 + AU2 brow raisers + AU5 upper-lid raiser + AU26 jaw drop
sadness       AU1 inner brow raiser + AU4 brow lowerer + AU15 lip-corner depressor + AU17
anger         AU4 + AU5 + AU7 lid tightener + AU24 lip pressor + AU17 chin raiser (+ AU9 slight)
disgust       AU9 nose wrinkler + AU10 upper-lip raiser + AU15 + AU16 + AU4 slight
fear          AU1 + AU2 + AU4 + AU5 + AU7 + AU20 lip stretcher + AU26
contempt      unilateral AU12 + AU14 dimpler (side drawn at random per image)
============  ======================================================================

Per image (all drawn from ``numpy.random.default_rng(seed)`` in a fixed order):

- identity ``beta ~ N(0, identity_sd^2)`` over the model's identity modes; per identity a skin
  albedo U(0.55, 0.9), brow darkening U(0.45, 0.8), lip darkening U(0.1, 0.3) and an
  expressivity gain per blendshape, lognormal with sd 0.15 (people express the same AUs with
  different strength);
- blendshapes ``psi = clip(intensity * recipe * gain + |N(0, 0.03^2)| residual activity, 0, 1)``;
- pose yaw ~ U(-p, p), pitch ~ U(-0.6 p, 0.6 p), roll ~ N(0, (p / 3)^2) degrees with
  ``p = pose_jitter_deg``; light direction (U(-0.6, 0.6), U(-0.2, 0.8), 1) normalised, ambient
  U(0.25, 0.5), brightness U(0.8, 1.15), background grey U(0.1, 0.7), crop shift U(-0.04, 0.04)
  of the image per axis, pixel noise N(0, noise_sd^2).

Ground truth in the returned :class:`FaceSet`: ``labels`` (the generating category, an index
into ``class_names``), ``valence``/``arousal`` = the category's circumplex point
(:data:`affectlab.data.taxonomy.CIRCUMPLEX_VA`, Russell & Mehrabian 1977; see
``CIRCUMPLEX_SOURCE``) times the intensity, ``identity``, ``soft_labels`` (10 simulated annotators,
FERPlus style: see :func:`simulated_votes`) and ``meta``: ``blendshapes`` (N, 53), ``beta``
(N, K), ``intensity``, ``pose`` (N, 3: yaw, pitch, roll), ``landmarks`` (N, 68, 2 pixel
coordinates, x right / y down, pixel centres at i + 0.5), ``landmarks_3d`` (N, 68, 3 mm, model
frame), ``light``, ``ambient``, ``brightness``, ``background``, ``blendshape_names``, ``recipe``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch

from affectlab.data.sets import FaceSet
from affectlab.data.taxonomy import CIRCUMPLEX_SOURCE, CIRCUMPLEX_VA, FERPLUS_CLASSES
from affectlab.facemodel import FaceModel
from affectlab.render import project_landmarks, render_face

GENERATOR_VERSION = 1

#: FACS action unit -> ICT blendshapes (ICT-FaceKit README table; AU26 jaw drop = half of jawOpen,
#: AU25 lips part = a little lower-lip depression).
AU_BLENDSHAPES: dict[str, dict[str, float]] = {
    "AU1": {"browInnerUp_L": 1.0, "browInnerUp_R": 1.0},
    "AU2": {"browOuterUp_L": 1.0, "browOuterUp_R": 1.0},
    "AU4": {"browDown_L": 1.0, "browDown_R": 1.0},
    "AU5": {"eyeWide_L": 1.0, "eyeWide_R": 1.0},
    "AU6": {"cheekSquint_L": 1.0, "cheekSquint_R": 1.0},
    "AU7": {"eyeSquint_L": 1.0, "eyeSquint_R": 1.0},
    "AU9": {"noseSneer_L": 1.0, "noseSneer_R": 1.0},
    "AU10": {"mouthShrugUpper": 1.0, "mouthUpperUp_L": 0.5, "mouthUpperUp_R": 0.5},
    "AU11": {"mouthUpperUp_L": 1.0, "mouthUpperUp_R": 1.0},
    "AU12": {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0},
    "AU12L": {"mouthSmile_L": 1.0},
    "AU12R": {"mouthSmile_R": 1.0},
    "AU14L": {"mouthDimple_L": 1.0},
    "AU14R": {"mouthDimple_R": 1.0},
    "AU15": {"mouthFrown_L": 1.0, "mouthFrown_R": 1.0},
    "AU16": {"mouthLowerDown_L": 1.0, "mouthLowerDown_R": 1.0},
    "AU17": {"mouthShrugLower": 1.0},
    "AU18": {"mouthPucker": 1.0},
    "AU20": {"mouthStretch_L": 1.0, "mouthStretch_R": 1.0},
    "AU22": {"mouthFunnel": 1.0},
    "AU24": {"mouthPress_L": 1.0, "mouthPress_R": 1.0},
    "AU25": {"mouthLowerDown_L": 0.3, "mouthLowerDown_R": 0.3},
    "AU26": {"jawOpen": 0.5},
    "AU27": {"jawOpen": 1.0},
    "AU28": {"mouthRollLower": 1.0, "mouthRollUpper": 1.0},
    "AU43": {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0},
}

#: Emotion prototypes as AU intensities at full expression (intensity 1). "calmness" (EAV) is not a
#: FACS prototype: a faint smile with relaxed, slightly lowered lids (our choice).
EMOTION_AUS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happiness": {"AU6": 0.9, "AU12": 1.0, "AU7": 0.2, "AU25": 0.5, "AU26": 0.25},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 0.9, "AU26": 1.2},
    "sadness": {"AU1": 1.0, "AU4": 0.5, "AU15": 1.0, "AU17": 0.6, "AU43": 0.15},
    "anger": {"AU4": 1.0, "AU5": 0.4, "AU7": 0.8, "AU24": 0.9, "AU17": 0.5, "AU9": 0.25},
    "disgust": {"AU9": 1.0, "AU10": 0.7, "AU15": 0.6, "AU16": 0.25, "AU4": 0.5, "AU6": 0.3},
    "fear": {"AU1": 1.0, "AU2": 0.7, "AU4": 0.5, "AU5": 1.0, "AU7": 0.2, "AU20": 1.0, "AU26": 0.6},
    "contempt": {"AU12R": 0.7, "AU14R": 1.0},
    "calmness": {"AU12": 0.25, "AU43": 0.2},
}

#: FERPlus-style annotator confusions: each category's votes not for itself go to these classes.
CONFUSIONS: dict[str, dict[str, float]] = {
    "neutral": {"sadness": 0.5, "contempt": 0.3, "happiness": 0.2},
    "happiness": {"neutral": 0.7, "surprise": 0.2, "contempt": 0.1},
    "surprise": {"fear": 0.6, "happiness": 0.2, "neutral": 0.2},
    "sadness": {"neutral": 0.6, "fear": 0.2, "anger": 0.2},
    "anger": {"disgust": 0.5, "neutral": 0.3, "sadness": 0.2},
    "disgust": {"anger": 0.6, "sadness": 0.2, "contempt": 0.2},
    "fear": {"surprise": 0.6, "sadness": 0.3, "neutral": 0.1},
    "contempt": {"neutral": 0.5, "happiness": 0.3, "disgust": 0.2},
}

DEFAULT_INTENSITIES: tuple[float, ...] = (0.4, 0.7, 1.0)
SPLIT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)


class GenerationError(ValueError):
    """A generator parameter is wrong; the message names it."""


_MODEL: FaceModel | None = None


def packaged_model() -> FaceModel:
    """The packaged face model, loaded once per process (generators never read a data root)."""
    global _MODEL
    if _MODEL is None:
        _MODEL = FaceModel.packaged()
    return _MODEL


def expression_recipe(category: str, model: FaceModel | None = None, side: str = "R") -> torch.Tensor:
    """Blendshape coefficients (53,) of ``category`` at intensity 1 (AUs of :data:`EMOTION_AUS`).

    ``side`` ("L" or "R") is the side of the unilateral contempt AUs.
    """
    if category not in EMOTION_AUS:
        raise GenerationError(f"unknown expression category {category!r}; known: {sorted(EMOTION_AUS)}")
    if side not in ("L", "R"):
        raise GenerationError(f"parameter side must be 'L' or 'R'; got {side!r}")
    model = model or packaged_model()
    psi = torch.zeros(model.n_expression)
    for au, weight in EMOTION_AUS[category].items():
        if au[-1] in "LR" and au[:-1] in ("AU12", "AU14"):
            au = au[:-1] + side
        for shape, share in AU_BLENDSHAPES[au].items():
            psi[model.expression_index(shape)] += weight * share
    return psi.clamp(0.0, 1.0)


def au_intensity(psi: torch.Tensor, model: FaceModel | None = None, aus: Sequence[str] = ()) -> torch.Tensor:
    """FACS intensity (0-5 scale, float) of ``aus`` from blendshape coefficients (..., 53).

    The inverse of :data:`AU_BLENDSHAPES` used for DISFA-style labels: the share-weighted mean of
    the AU's blendshape coefficients x 5 (AU26 reads jawOpen / 0.5, capped at 5).
    """
    model = model or packaged_model()
    out = []
    for au in aus:
        if au not in AU_BLENDSHAPES:
            raise GenerationError(f"unknown action unit {au!r}; known: {sorted(AU_BLENDSHAPES)}")
        parts = AU_BLENDSHAPES[au]
        value = sum(psi[..., model.expression_index(s)] / w for s, w in parts.items()) / len(parts)
        out.append((5.0 * value).clamp(0.0, 5.0))
    return torch.stack(out, dim=-1)


def simulated_votes(labels: np.ndarray, intensity: np.ndarray, class_names: Sequence[str],
                    rng: np.random.Generator, n_annotators: int = 10) -> np.ndarray:
    """FERPlus-like vote distributions (N, K): 10 annotators per image.

    An annotator picks the true category with probability ``0.45 + 0.5 * intensity`` (0.85 for
    neutral) and otherwise a confusable category (:data:`CONFUSIONS`, restricted to
    ``class_names`` and renormalised). Returns votes / n_annotators (rows sum to 1).
    """
    k = len(class_names)
    probs = np.zeros((len(labels), k))
    for i, (label, s) in enumerate(zip(labels, intensity)):
        name = class_names[label]
        p_true = 0.85 if name == "neutral" else float(np.clip(0.45 + 0.5 * s, 0.0, 1.0))
        conf = {c: w for c, w in CONFUSIONS.get(name, {}).items() if c in class_names}
        total = sum(conf.values())
        probs[i, label] = p_true if total > 0 else 1.0
        for c, w in conf.items():
            probs[i, class_names.index(c)] += (1.0 - p_true) * w / total
    votes = np.stack([rng.multinomial(n_annotators, p) for p in probs]) if len(probs) else probs
    return (votes / n_annotators).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Appearance:
    """Per-identity rendering appearance (see the module docstring)."""

    skin: np.ndarray
    brows: np.ndarray
    lips: np.ndarray
    gain: np.ndarray  # (n_identities, 53) expressivity gain


def draw_identities(n_identities: int, model: FaceModel, rng: np.random.Generator,
                    identity_sd: float = 1.0) -> tuple[torch.Tensor, Appearance]:
    """Identity coefficients (n, K) and appearance of ``n_identities`` generated people."""
    beta = torch.as_tensor(rng.normal(0.0, identity_sd, size=(n_identities, model.n_identity)), dtype=torch.float32)
    look = Appearance(
        skin=rng.uniform(0.55, 0.9, n_identities),
        brows=rng.uniform(0.45, 0.8, n_identities),
        lips=rng.uniform(0.1, 0.3, n_identities),
        gain=np.exp(rng.normal(0.0, 0.15, size=(n_identities, model.n_expression))),
    )
    return beta, look


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise GenerationError(f"parameter {name} must be an int >= {low}; got {value!r}")
    return int(value)


@dataclasses.dataclass
class RenderJob:
    """Everything per image that :func:`render_batch` needs (arrays of length N)."""

    identity: np.ndarray
    psi: torch.Tensor  # (N, 53)
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    light: np.ndarray  # (N, 3)
    ambient: np.ndarray
    brightness: np.ndarray
    background: np.ndarray
    shift: np.ndarray  # (N, 2)


def draw_conditions(n: int, rng: np.random.Generator, pose_jitter_deg: float, vary_lighting: bool = True
                    ) -> dict[str, np.ndarray]:
    """Pose, lighting, background and crop shift for ``n`` images (module docstring)."""
    p = float(pose_jitter_deg)
    if p < 0 or p > 60:
        raise GenerationError(f"parameter pose_jitter_deg must be in [0, 60]; got {pose_jitter_deg}")
    yaw = rng.uniform(-p, p, n)
    pitch = rng.uniform(-0.6 * p, 0.6 * p, n)
    roll = rng.normal(0.0, p / 3.0, n) if p > 0 else np.zeros(n)
    if vary_lighting:
        light = np.stack([rng.uniform(-0.6, 0.6, n), rng.uniform(-0.2, 0.8, n), np.ones(n)], axis=1)
        ambient, brightness = rng.uniform(0.25, 0.5, n), rng.uniform(0.8, 1.15, n)
        background, shift = rng.uniform(0.1, 0.7, n), rng.uniform(-0.04, 0.04, (n, 2))
    else:
        light = np.tile([0.2, 0.4, 1.0], (n, 1))
        ambient, brightness = np.full(n, 0.35), np.ones(n)
        background, shift = np.full(n, 0.5), np.zeros((n, 2))
    return {"yaw": yaw, "pitch": pitch, "roll": roll, "light": light, "ambient": ambient,
            "brightness": brightness, "background": background, "shift": shift}


def render_batch(model: FaceModel, beta: torch.Tensor, look: Appearance, job: RenderJob, size: int,
                 noise_sd: float, rng: np.random.Generator,
                 chunk: int = 256) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Render a job: images (N, 1, size, size) uint8, landmarks (N, 68, 2) px, landmarks_3d (N, 68, 3) mm."""
    n = len(job.identity)
    images = torch.empty(n, 1, size, size, dtype=torch.uint8)
    lm2, lm3 = np.zeros((n, 68, 2), np.float32), np.zeros((n, 68, 3), np.float32)
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    for start in range(0, n, chunk):
        sl = slice(start, min(start + chunk, n))
        ids = job.identity[sl]
        verts = model.vertices(beta[ids], job.psi[sl])
        pose = {"yaw": t(job.yaw[sl]), "pitch": t(job.pitch[sl]), "roll": t(job.roll[sl]), "shift": t(job.shift[sl])}
        images[sl] = render_face(
            model, verts, size=size,
            appearance={"skin": t(look.skin[ids]), "brows": t(look.brows[ids]), "lips": t(look.lips[ids])},
            light=t(job.light[sl]), ambient=t(job.ambient[sl]), brightness=t(job.brightness[sl]),
            background=t(job.background[sl]), **pose,
        )
        lm2[sl] = project_landmarks(model, verts, size=size, **pose).numpy()
        lm3[sl] = model.landmarks(verts).numpy()
    if noise_sd > 0:
        noisy = images.float() + torch.as_tensor(rng.normal(0.0, 255.0 * noise_sd, images.shape), dtype=torch.float32)
        images = noisy.round().clamp(0, 255).to(torch.uint8)
    return images, lm2, lm3


def _expressions(labels: np.ndarray, intensity: np.ndarray, identity: np.ndarray, class_names: Sequence[str],
                 look: Appearance, model: FaceModel, rng: np.random.Generator) -> torch.Tensor:
    sides = rng.choice(["L", "R"], size=len(labels))
    recipes = {(c, s): expression_recipe(c, model, s) for c in set(class_names) for s in "LR"}
    base = torch.stack([recipes[(class_names[c], s)] for c, s in zip(labels, sides)])
    gain = torch.as_tensor(look.gain[identity], dtype=torch.float32)
    residual = torch.as_tensor(np.abs(rng.normal(0.0, 0.03, size=base.shape)), dtype=torch.float32)
    return (torch.as_tensor(intensity, dtype=torch.float32)[:, None] * base * gain + residual).clamp(0.0, 1.0)


def generate_faces(
    n_identities: int = 35,
    intensities: Sequence[float] = DEFAULT_INTENSITIES,
    size: int = 48,
    seed: int = 0,
    pose_jitter_deg: float = 15.0,
    class_names: Sequence[str] = FERPLUS_CLASSES,
    repeats: int = 1,
    noise_sd: float = 0.01,
    vary_lighting: bool = True,
    yaw_views: Sequence[float] | None = None,
    name: str = "generated_faces",
    model: FaceModel | None = None,
) -> FaceSet:
    """Every identity x category x intensity (x ``repeats`` poses) as a :class:`FaceSet`, split "all".

    ``class_names`` are categories of :data:`EMOTION_AUS` (default the 8 FERPlus classes); neutral
    is rendered once per intensity like the others (same neutral face, new pose and lighting).
    ``yaw_views`` (degrees) renders each face once per view (replacing ``repeats``), the pose
    jitter added on top. Use :func:`split_by_identity` for identity-disjoint train/valid/test sets.
    """
    n_identities = _check_int(n_identities, "n_identities", 1)
    repeats = _check_int(repeats, "repeats", 1) if yaw_views is None else len(yaw_views)
    if repeats < 1:
        raise GenerationError("parameter yaw_views must not be empty")
    intensities = tuple(float(s) for s in intensities)
    if not intensities or any(not 0.0 < s <= 1.5 for s in intensities):
        raise GenerationError(f"parameter intensities must be non-empty values in (0, 1.5]; got {intensities}")
    class_names = tuple(class_names)
    unknown = [c for c in class_names if c not in EMOTION_AUS or c not in CIRCUMPLEX_VA]
    if unknown:
        raise GenerationError(
            f"parameter class_names: {unknown} have no expression recipe; known {sorted(EMOTION_AUS)}"
        )
    if noise_sd < 0:
        raise GenerationError(f"parameter noise_sd must be >= 0; got {noise_sd}")
    model = model or packaged_model()
    rng = np.random.default_rng(seed)
    beta, look = draw_identities(n_identities, model, rng)
    grid = np.array(np.meshgrid(np.arange(n_identities), np.arange(len(class_names)), np.arange(len(intensities)),
                                np.arange(repeats), indexing="ij")).reshape(4, -1)
    identity, labels, level, view = grid
    intensity = np.asarray(intensities)[level]
    n = len(identity)
    psi = _expressions(labels, intensity, identity, class_names, look, model, rng)
    cond = draw_conditions(n, rng, pose_jitter_deg, vary_lighting)
    if yaw_views is not None:
        cond["yaw"] = cond["yaw"] + np.asarray(yaw_views, dtype=np.float64)[view]
    job = RenderJob(identity=identity, psi=psi, **cond)
    images, lm2, lm3 = render_batch(model, beta, look, job, size, noise_sd, rng)
    soft = simulated_votes(labels, intensity, class_names, rng)
    va = np.array([CIRCUMPLEX_VA[class_names[c]] for c in labels], dtype=np.float32)
    va = va * intensity[:, None].astype(np.float32)
    source = (
        f"generated: {n_identities} identities x {len(class_names)} expressions x intensities {intensities}"
        f" x {repeats} rendered from the packaged ICT-FaceKit model (FACS prototypes), seed {seed}, "
        f"{size}px, pose jitter {pose_jitter_deg} deg"
    )
    return FaceSet(
        images=images,
        labels=torch.as_tensor(labels, dtype=torch.long),
        class_names=class_names,
        name=name,
        split="all",
        source=source,
        soft_labels=torch.as_tensor(soft),
        identity=torch.as_tensor(identity, dtype=torch.long),
        identity_names=tuple(f"G{i + 1:03d}" for i in range(n_identities)),
        valence=torch.as_tensor(va[:, 0]),
        arousal=torch.as_tensor(va[:, 1]),
        meta={
            "blendshapes": psi.numpy().astype(np.float32),
            "beta": beta[identity].numpy(),
            "intensity": intensity.astype(np.float32),
            "pose": np.stack([cond["yaw"], cond["pitch"], cond["roll"]], axis=1).astype(np.float32),
            "landmarks": lm2,
            "landmarks_3d": lm3,
            "light": cond["light"].astype(np.float32),
            "ambient": cond["ambient"].astype(np.float32),
            "brightness": cond["brightness"].astype(np.float32),
            "background": cond["background"].astype(np.float32),
            "blendshape_names": model.expression_names,
            "recipe": {c: dict(EMOTION_AUS[c]) for c in class_names},
            "circumplex_source": CIRCUMPLEX_SOURCE,
            "soft_labels": "10 simulated annotators (affectlab.data.generate.faces.simulated_votes)",
            "generator_version": GENERATOR_VERSION,
        },
    )


def identity_splits(n_identities: int, fractions: Sequence[float] = SPLIT_FRACTIONS, seed: int = 0,
                    names: Sequence[str] = ("train", "valid", "test")) -> dict[str, np.ndarray]:
    """Deterministic identity-disjoint split: a seeded permutation cut by ``fractions``.

    Every split gets at least one identity (when there are enough); the rest go to the first split.
    """
    if len(fractions) != len(names) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise GenerationError(f"parameter fractions must be {len(names)} non-negative numbers; got {fractions}")
    if n_identities < len(names):
        raise GenerationError(f"need at least {len(names)} identities for splits {tuple(names)}; got {n_identities}")
    order = np.random.default_rng(seed + 7919).permutation(n_identities)
    share = np.asarray(fractions, dtype=np.float64) / sum(fractions)
    counts = np.maximum(np.floor(share * n_identities).astype(int), 1)
    counts[0] = n_identities - counts[1:].sum()
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return {name: np.sort(order[bounds[i]:bounds[i + 1]]) for i, name in enumerate(names)}


def split_by_identity(faces: FaceSet, fractions: Sequence[float] = SPLIT_FRACTIONS, seed: int = 0,
                      names: Sequence[str] = ("train", "valid", "test")) -> dict[str, FaceSet]:
    """Identity-disjoint subsets of ``faces`` (see :func:`identity_splits`), each with its split name."""
    if faces.identity is None:
        raise GenerationError(f"{faces.name}: split_by_identity needs identities")
    n_ids = int(faces.identity.max()) + 1
    out = {}
    for name, ids in identity_splits(n_ids, fractions, seed, names).items():
        rows = np.flatnonzero(np.isin(faces.identity.numpy(), ids))
        out[name] = dataclasses.replace(faces.subset(rows), split=name)
    return out


def generate_kdef_like(n_identities: int = 35, size: int = 48, seed: int = 0, yaw_views: Sequence[float] = (0.0,),
                       name: str = "generated_kdef") -> FaceSet:
    """KDEF-like posed set: studio faces, 7 expressions (no contempt) at full intensity.

    ``yaw_views``: one image per view; KDEF's straight and half profiles are (0,) and (-45, 0, 45).
    Full profiles (+-90) are not offered: the face-area model has no back of the head. Lighting
    and background are fixed (studio), no pose jitter.
    """
    classes = tuple(c for c in FERPLUS_CLASSES if c != "contempt")
    faces = generate_faces(n_identities, (1.0,), size, seed, 0.0, classes, noise_sd=0.005, vary_lighting=False,
                           yaw_views=yaw_views, name=name)
    faces.source = faces.source.replace("generated:", "generated (KDEF-like, posed, studio light):", 1)
    return faces


DISFA_AUS: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU9", "AU12", "AU15", "AU17", "AU20", "AU25", "AU26")


def expression_episodes(n_frames: int, fps: float, categories: Sequence[str], rng: np.random.Generator,
                        model: FaceModel, mean_gap_s: float = 2.0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """A continuous sequence of expression episodes (onset - apex - offset, raised-cosine ramps).

    Returns blendshapes (n_frames, 53), per-frame category index (the episode's category where
    its envelope >= 0.3, else the index of "neutral" or -1) and envelope (n_frames,).
    """
    psi = torch.zeros(n_frames, model.n_expression)
    label = np.full(n_frames, categories.index("neutral") if "neutral" in categories else -1)
    envelope = np.zeros(n_frames)
    t = 0.0
    duration = n_frames / fps
    emotive = [c for c in categories if c != "neutral"]
    while t < duration:
        t += rng.exponential(mean_gap_s)
        category = emotive[rng.integers(len(emotive))]
        ramp, apex = rng.uniform(0.5, 1.5), rng.uniform(1.0, 3.0)
        peak = rng.uniform(0.5, 1.0)
        frames = np.arange(n_frames) / fps
        u = np.clip(np.minimum((frames - t) / ramp, (t + 2 * ramp + apex - frames) / ramp), 0.0, 1.0)
        env = peak * (0.5 - 0.5 * np.cos(np.pi * u))
        recipe = expression_recipe(category, model, "LR"[rng.integers(2)])
        psi = torch.maximum(psi, torch.as_tensor(env, dtype=torch.float32)[:, None] * recipe[None])
        stronger = env > np.maximum(envelope, 0.3 - 1e-9)
        label[stronger] = categories.index(category)
        envelope = np.maximum(envelope, env)
        t += 2 * ramp + apex
    return psi, label, envelope


def generate_disfa_like(n_identities: int = 6, seconds: float = 60.0, fps: float = 2.0, size: int = 48, seed: int = 0,
                        name: str = "generated_disfa") -> FaceSet:
    """DISFA-like spontaneous sequences: a few identities, continuous expression episodes, AU labels.

    Each identity gets one sequence of ``seconds`` at ``fps`` frames per second (DISFA: 4,845 frames
    at 20 fps per subject; its loader keeps every 20th frame, i.e. 1 fps). ``meta["au_intensity"]``
    holds the 12 DISFA AUs (0-5, float; :func:`au_intensity`); ``labels`` are the episode
    categories (ground truth DISFA lacks; the DCNN-hierarchy paper labels DISFA frames with a
    classifier instead), ``meta["frame"]`` the frame index within the sequence.
    """
    n_identities = _check_int(n_identities, "n_identities", 1)
    n_frames = int(round(seconds * fps))
    if n_frames < 1:
        raise GenerationError(f"parameters seconds={seconds} and fps={fps} give no frames")
    model = packaged_model()
    rng = np.random.default_rng(seed)
    beta, look = draw_identities(n_identities, model, rng)
    psi_parts, labels, env_parts = [], [], []
    for _ in range(n_identities):
        psi, label, env = expression_episodes(n_frames, fps, FERPLUS_CLASSES, rng, model)
        psi_parts.append(psi)
        labels.append(label)
        env_parts.append(env)
    psi = torch.cat(psi_parts)
    residual = torch.as_tensor(np.abs(rng.normal(0.0, 0.02, size=psi.shape)), dtype=torch.float32)
    identity = np.repeat(np.arange(n_identities), n_frames)
    psi = (psi * torch.as_tensor(look.gain[identity], dtype=torch.float32) + residual).clamp(0, 1)
    n = len(identity)
    drift = np.concatenate([np.cumsum(rng.normal(0, 0.7, size=(n_frames, 3)), axis=0).clip(-12, 12)
                            for _ in range(n_identities)])
    cond = draw_conditions(n, rng, 0.0, vary_lighting=False)
    cond["yaw"], cond["pitch"], cond["roll"] = drift[:, 0], 0.6 * drift[:, 1], 0.3 * drift[:, 2]
    job = RenderJob(identity=identity, psi=psi, **cond)
    images, lm2, lm3 = render_batch(model, beta, look, job, size, 0.01, rng)
    label = np.concatenate(labels)
    intensity = np.concatenate(env_parts)
    va = np.array([CIRCUMPLEX_VA[FERPLUS_CLASSES[c]] for c in label], dtype=np.float32)
    va = va * intensity[:, None].astype(np.float32)
    return FaceSet(
        images=images,
        labels=torch.as_tensor(label, dtype=torch.long),
        class_names=FERPLUS_CLASSES,
        name=name,
        split="all",
        source=(f"generated (DISFA-like sequences): {n_identities} identities x {n_frames} frames at {fps} fps, "
                f"packaged ICT-FaceKit model, seed {seed}, {size}px"),
        identity=torch.as_tensor(identity, dtype=torch.long),
        identity_names=tuple(f"SN{i + 1:03d}" for i in range(n_identities)),
        valence=torch.as_tensor(va[:, 0]),
        arousal=torch.as_tensor(va[:, 1]),
        meta={
            "au_intensity": au_intensity(psi, model, DISFA_AUS).numpy().astype(np.float32),
            "au_names": DISFA_AUS,
            "frame": np.tile(np.arange(n_frames), n_identities),
            "blendshapes": psi.numpy().astype(np.float32),
            "intensity": intensity.astype(np.float32),
            "pose": np.stack([cond["yaw"], cond["pitch"], cond["roll"]], axis=1).astype(np.float32),
            "landmarks": lm2,
            "landmarks_3d": lm3,
            "blendshape_names": model.expression_names,
            "generator_version": GENERATOR_VERSION,
        },
    )
