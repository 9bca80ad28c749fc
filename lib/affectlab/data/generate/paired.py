"""Paired EEG + face sequences with one shared latent trajectory: the EAV-like embedded default.

EEG2Face (Kabidenova 2025, Sec. 3.1) pairs EAV trials (Lee et al. 2024: 5 emotions Neutral,
Sadness, Anger, Happiness, Calmness; conversational listening/speaking; EEG at 100 Hz after
resampling, video down-sampled to 10 fps so one frame spans 10 EEG samples) and supervises an EEG
decoder with the FLAME expression + jaw parameters a vision model reads from the frames. Here the
face parameters are known exactly, because both modalities are generated from them.

What is PLANTED, per trial (``numpy.random.default_rng(seed)``, fixed draw order):

1. One latent trajectory at the EEG rate (``sfreq``) of the 53 ICT blendshapes and the 3-vector
   jaw (open, lateral, forward) of :class:`~affectlab.facemodel.FaceModel`:
   - emotion: the category's FACS recipe (:data:`affectlab.data.generate.faces.EMOTION_AUS`;
     calmness = faint smile + relaxed lids) times a smooth intensity in [0.4, 1] (low-pass
     noise, ~0.3 Hz), x 0.6 for listening trials, x the identity's expressivity gains;
   - talking (speaking trials only): phrases of 1-3 s separated by 0.3-1 s pauses, within which
     the jaw opens and closes at a syllable rate of 3-5 Hz (``jaw[..., 0]`` up to
     0.15-0.35, larger with arousal), with small lateral/forward jaw drift and lip rounding
     (mouthFunnel/mouthPucker) following the syllables;
   - blinks (eyeBlink_L/R, 150 ms raised-cosine pulses, mean gap 3.5 s) and small idiosyncratic
     noise on every blendshape.
   Jaw blendshapes (jawOpen, jawLeft, jawRight, jawForward) are kept at 0 in ``blendshapes``: all
   jaw motion lives in ``jaw``.
2. Frames: the trajectory sampled every ``sfreq / fps`` samples, rendered with the subject's
   identity (:func:`affectlab.render.render_face`), a fixed crop per subject (from the neutral
   face), fixed lighting, and slow head motion (random walk, within +-``head_motion_deg``).
3. EEG: :func:`affectlab.data.generate.eeg.simulate_eeg` with the trial's circumplex valence
   (:data:`affectlab.data.taxonomy.CIRCUMPLEX_VA`: frontal alpha asymmetry, 8-12 Hz) but arousal 0
   (that function plants arousal in beta 13-30 Hz and gamma 30-45 Hz, which overlap the 20-45 Hz EMG
   band); arousal is planted here instead, OUTSIDE the EMG band, as a spatially correlated low-beta
   rhythm (:data:`AROUSAL_BAND` 13-19 Hz, RMS :data:`AROUSAL_RMS_UV` with ln power +
   :data:`AROUSAL_LN_PER_UNIT` x arousal and a per-trial N(0, 0.1^2) jitter;
   :func:`arousal_rhythm`). ``emg_drive`` has two columns (that function's default: column 0 ->
   temporal channels, column 1 -> frontal channels): ``mouth = jaw_open + 0.5 * mean(mouthSmile,
   mouthPress, mouthStretch, mouthFunnel, mouthPucker)`` and ``brow = mean(browDown, browInnerUp,
   browOuterUp)``, each scaled to unit mean over the data set, mixed with a face-independent
   surrogate as ``(coupling * face + surrogate) / (coupling + 1)``: ``coupling`` is the amplitude
   ratio of face-locked to face-independent EMG (0 = EMG present but unrelated to the face). The
   surrogate of each trial is the same two actions of a SEPARATELY generated face (a speaking or
   listening trial like it, of a random subject, whose emotion is drawn uniformly at random,
   independently of the trial's own emotion; :func:`surrogate_faces`), so at coupling 0 the EMG
   says nothing about the trial's face or its emotion. ``background`` (trials, channels, samples)
   replaces the simulated pink background with real EEG.

Version 2 (:data:`PAIRED_VERSION`): arousal moved out of the EMG band, the surrogate made
independent of the trial's emotion (version 1 took the face of trial i + k, whose emotion is a fixed
function of trial i's).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np
import torch

from affectlab.data.sets import EEGSet
from affectlab.data.taxonomy import CIRCUMPLEX_SOURCE, CIRCUMPLEX_VA, EAV_CLASSES
from affectlab.data.generate.faces import (
    GenerationError,
    draw_identities,
    expression_recipe,
    packaged_model,
)
from affectlab.facemodel import FaceModel
from affectlab.render import render_face

PAIRED_VERSION = 2
AROUSAL_BAND = (13.0, 19.0)
"""Hz: the planted arousal rhythm (low beta), below the 20-45 Hz EMG band of the EEG simulator."""
AROUSAL_RMS_UV = 3.0
AROUSAL_LN_PER_UNIT = 1.2
"""ln power of the arousal rhythm per unit of circumplex arousal (about +-0.7 between EAV's emotions)."""
AROUSAL_JITTER = 0.1
JAW_SHAPES = ("jawOpen", "jawLeft", "jawRight", "jawForward")
MOUTH_EMG_SHAPES = ("mouthSmile_L", "mouthSmile_R", "mouthPress_L", "mouthPress_R", "mouthStretch_L",
                    "mouthStretch_R", "mouthFunnel", "mouthPucker")
BROW_EMG_SHAPES = ("browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R")
TASKS = ("listening", "speaking")
UPPER_FACE_PREFIXES = ("brow", "eye", "cheekSquint", "noseSneer")
"""Blendshapes of the upper face (AU1, 2, 4, 5, 6, 7, 9, 43 and blinks): what re-posing changes."""


@dataclasses.dataclass
class FaceComponents:
    """The parts every trial's face was composed of, at the frame times (see :func:`compose_face`).

    Attributes:
        level: float32 (trials, T) the emotion intensity; rest: float32 (trials, T, 53) the
            emotion-free blendshape activity (residual noise, speech lip rounding); blink: float32
            (trials, T) blink pulses; talk: float32 (trials, T, 3) the talking jaw; side: (trials,)
            "L"/"R" side of unilateral AUs; gain: float32 (subjects, 53) expressivity gains.
    """

    level: np.ndarray
    rest: np.ndarray
    blink: np.ndarray
    talk: np.ndarray
    side: np.ndarray
    gain: np.ndarray


def compose_face(emotion_psi: np.ndarray, rest: np.ndarray, talk: np.ndarray, blink_pulse: np.ndarray,
                 jaw_idx: Sequence[int], blink_idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Blendshapes (..., 53) and jaw (..., 3) from their parts (module docstring, step 1).

    ``psi = emotion_psi + rest``; the jaw blendshapes (jawOpen, jawLeft, jawRight, jawForward) are
    moved into ``jaw`` (open, lateral, forward) and zeroed, ``talk`` is added to the jaw, blinks
    are ``max(psi, blink_pulse)`` on ``blink_idx``; then ``psi`` is clipped to [0, 1], ``jaw`` to
    [-1, 1].
    """
    psi = emotion_psi + rest
    jaw = np.stack([psi[..., jaw_idx[0]], psi[..., jaw_idx[1]] - psi[..., jaw_idx[2]], psi[..., jaw_idx[3]]], -1)
    psi[..., list(jaw_idx)] = 0.0
    jaw = jaw + talk
    psi[..., list(blink_idx)] = np.maximum(psi[..., list(blink_idx)], blink_pulse[..., None])
    return np.clip(psi, 0.0, 1.0), np.clip(jaw, -1.0, 1.0)


def upper_face_mask(names: Sequence[str]) -> np.ndarray:
    """Bool (53,): True for the blendshapes of :data:`UPPER_FACE_PREFIXES`."""
    return np.array([n.startswith(UPPER_FACE_PREFIXES) for n in names])


def repose_upper_face(paired: "PairedSequences", emotion: int | str, model: FaceModel | None = None,
                      trials: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every trial's face re-posed into ``emotion`` on the upper face only: the stand-in for EEG2Face's
    retargeted emotional faces (Sec. 3.0.6, LivePortrait), which "preserve the identity and content
    ... while changing only the upper facial expressions".

    The upper-face blendshapes (:func:`upper_face_mask`) are recomposed from the trial's own parts
    (intensity, residual activity, blinks, expressivity, side) with ``emotion``'s recipe in place of
    the trial's; the lower face and the jaw (speech, the trial's own mouth expression) are kept.
    Re-posing a trial into its own emotion returns its face unchanged. Returns blendshapes
    (trials, T, 53) and jaw (trials, T, 3) at the frame times (``trials`` selects rows).
    """
    if paired.reposing is None:
        raise GenerationError("parameter paired has no face components (generated before re-posing existed)")
    model = model or packaged_model()
    if isinstance(emotion, str):
        if emotion not in paired.class_names:
            raise GenerationError(f"parameter emotion {emotion!r} is not one of {paired.class_names}")
        emotion = paired.class_names.index(emotion)
    if isinstance(emotion, bool) or not 0 <= int(emotion) < len(paired.class_names):
        raise GenerationError(f"parameter emotion must index {paired.class_names}; got {emotion!r}")
    rows = np.arange(len(paired)) if trials is None else np.asarray(trials, dtype=np.int64)
    c = paired.reposing
    recipes = {side: expression_recipe(paired.class_names[int(emotion)], model, side).numpy() for side in "LR"}
    recipe = np.stack([recipes[str(side)] for side in c.side[rows]])  # (n, 53)
    gain = c.gain[paired.subject[rows] - 1]  # (n, 53)
    emotion_psi = c.level[rows][..., None] * (recipe * gain)[:, None, :]
    jaw_idx = [model.expression_index(s) for s in JAW_SHAPES]
    blink_idx = [model.expression_index("eyeBlink_L"), model.expression_index("eyeBlink_R")]
    psi, _ = compose_face(emotion_psi, c.rest[rows].astype(np.float64), c.talk[rows], c.blink[rows], jaw_idx, blink_idx)
    upper = upper_face_mask(model.expression_names)
    out = paired.blendshapes[rows].copy()
    out[..., upper] = psi[..., upper]
    return out.astype(np.float32), paired.jaw[rows].copy()


@dataclasses.dataclass
class PairedSequences:
    """EEG and face frames of the same trials (see the module docstring for what is planted).

    Attributes:
        eeg: float32 (trials, channels, samples) in uV at ``sfreq``.
        frames: uint8 (trials, T, 1, H, W) at ``fps`` (T = seconds x fps), or None when not rendered.
        blendshapes: float32 (trials, T, 53) at the frame times (jaw shapes 0); jaw: (trials, T, 3).
        emotion: int64 (trials,) index into ``class_names`` (EAV order); task: 0 listening, 1 speaking.
        subject: int64 (trials,) 1-based; valence, arousal: float32 (trials,) circumplex points.
        emg_drive: float32 (trials, samples, 2) the drive given to the EEG simulator (mouth, brow).
        face_actions: float32 (trials, samples, 2) the face-locked actions before mixing.
        reposing: the parts each face was composed of (:class:`FaceComponents`), so that
            :func:`repose_upper_face` can re-pose a trial into another emotion exactly.
    """

    eeg: np.ndarray
    frames: np.ndarray | None
    blendshapes: np.ndarray
    jaw: np.ndarray
    emotion: np.ndarray
    task: np.ndarray
    subject: np.ndarray
    valence: np.ndarray
    arousal: np.ndarray
    emg_drive: np.ndarray
    face_actions: np.ndarray
    ch_names: tuple[str, ...]
    sfreq: float
    fps: float
    coupling: float
    class_names: tuple[str, ...] = EAV_CLASSES
    blendshape_names: tuple[str, ...] = ()
    source: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    reposing: "FaceComponents | None" = None

    def __len__(self) -> int:
        return len(self.eeg)

    def to_eegset(self, name: str = "eav", split: str = "all") -> EEGSet:
        """The EEG as an :class:`EEGSet` with EAV's label keys; face targets in ``meta``."""
        n = len(self)
        return EEGSet(
            data=self.eeg,
            kind="signal",
            ch_names=self.ch_names,
            name=name,
            split=split,
            source=self.source,
            sfreq=self.sfreq,
            labels={
                "emotion": self.emotion,
                "task": self.task,
                "trial": np.arange(n, dtype=np.int64),
                "segment": np.zeros(n, dtype=np.int64),
                "valence": self.valence,
                "arousal": self.arousal,
            },
            subject=self.subject,
            assumptions=("Generated EEG + face trajectories; planted effects in affectlab.data.generate.paired",),
            meta={
                "unit": "uV",
                "class_names": self.class_names,
                "task_names": TASKS,
                "blendshapes": self.blendshapes,
                "jaw": self.jaw,
                "frames": self.frames,
                "fps": self.fps,
                "emg_drive": self.emg_drive,
                "face_actions": self.face_actions,
                "coupling": self.coupling,
                "blendshape_names": self.blendshape_names,
                **self.meta,
            },
        )


def _smooth_noise(rng: np.random.Generator, n: int, sfreq: float, cutoff_hz: float, k: int | None = None) -> np.ndarray:
    """Zero-mean, unit-SD noise (n,) or (k, n) low-passed at ``cutoff_hz`` (FFT mask)."""
    spectrum = np.fft.rfft(rng.standard_normal((1 if k is None else k, n)), axis=-1)
    spectrum[:, np.fft.rfftfreq(n, 1.0 / sfreq) > cutoff_hz] = 0.0
    x = np.fft.irfft(spectrum, n=n, axis=-1)
    x = (x - x.mean(-1, keepdims=True)) / np.maximum(x.std(-1, keepdims=True), 1e-12)
    return x[0] if k is None else x


def _pulses(rng: np.random.Generator, n: int, sfreq: float, mean_gap_s: float, width_s: float) -> np.ndarray:
    """Raised-cosine pulses of ``width_s`` at exponential gaps (blinks)."""
    out = np.zeros(n)
    t = rng.exponential(mean_gap_s)
    half = width_s / 2
    times = np.arange(n) / sfreq
    while t < n / sfreq:
        u = np.clip(1 - np.abs(times - t) / half, 0, 1)
        out = np.maximum(out, 0.5 - 0.5 * np.cos(np.pi * u))
        t += width_s + rng.exponential(mean_gap_s)
    return out


def talking_jaw(rng: np.random.Generator, n: int, sfreq: float, arousal: float) -> tuple[np.ndarray, np.ndarray]:
    """Jaw (n, 3) and a syllable signal (n,) in [0, 1] for speech: phrases of syllables (module doc)."""
    times = np.arange(n) / sfreq
    phrase = np.zeros(n)
    t = rng.uniform(0.0, 0.5)
    while t < times[-1]:
        length = rng.uniform(1.0, 3.0)
        u = np.clip(np.minimum((times - t) / 0.15, (t + length - times) / 0.15), 0, 1)
        phrase = np.maximum(phrase, u)
        t += length + rng.uniform(0.3, 1.0)
    rate = rng.uniform(3.0, 5.0) + 0.4 * _smooth_noise(rng, n, sfreq, 0.5)
    phase = 2 * np.pi * np.cumsum(rate) / sfreq + rng.uniform(0, 2 * np.pi)
    syllable = phrase * (0.5 - 0.5 * np.cos(phase))
    amplitude = rng.uniform(0.15, 0.25) + 0.1 * max(arousal, 0.0)
    jaw = np.zeros((n, 3))
    jaw[:, 0] = amplitude * syllable
    jaw[:, 1] = 0.03 * _smooth_noise(rng, n, sfreq, 1.0) * phrase
    jaw[:, 2] = np.clip(0.04 * _smooth_noise(rng, n, sfreq, 1.0), 0, None) * phrase
    return jaw, syllable


def face_actions(psi: np.ndarray, jaw: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """(..., 2) mouth and brow action signals from blendshapes (..., 53) and jaw (..., 3)."""
    idx = {n: i for i, n in enumerate(names)}
    mouth = jaw[..., 0] + 0.5 * psi[..., [idx[s] for s in MOUTH_EMG_SHAPES]].mean(-1)
    brow = psi[..., [idx[s] for s in BROW_EMG_SHAPES]].mean(-1)
    return np.stack([mouth, brow], axis=-1)


def _trial_face(rng: np.random.Generator, model: FaceModel, subject: int, task: str, emotion: int, n_samples: int,
                sfreq: float, gain: np.ndarray) -> dict[str, Any]:
    """One trial's face at the EEG rate (module docstring, step 1): blendshapes ``psi`` (n, 53),
    ``jaw`` (n, 3) and the parts they were composed of (``level``, ``rest``, ``blink``, ``talk``,
    ``side``), for ``subject``'s expressivity ``gain`` (53,)."""
    names = model.expression_names
    jaw_idx = [model.expression_index(s) for s in JAW_SHAPES]
    funnel, pucker = model.expression_index("mouthFunnel"), model.expression_index("mouthPucker")
    blink = [model.expression_index("eyeBlink_L"), model.expression_index("eyeBlink_R")]
    side = "LR"[rng.integers(2)]
    recipe = expression_recipe(EAV_CLASSES[emotion], model, side).numpy()
    level = np.clip(0.7 + 0.2 * _smooth_noise(rng, n_samples, sfreq, 0.3), 0.4, 1.0)
    if task == "listening":
        level = 0.6 * level
    rest = 0.03 * np.abs(_smooth_noise(rng, n_samples, sfreq, 0.5, len(names))).T
    talk = np.zeros((n_samples, 3))
    if task == "speaking":
        talk, syllable = talking_jaw(rng, n_samples, sfreq, float(CIRCUMPLEX_VA[EAV_CLASSES[emotion]][1]))
        rest[:, funnel] += 0.25 * syllable * rng.uniform(0.3, 1.0)
        rest[:, pucker] += 0.15 * syllable * rng.uniform(0.3, 1.0)
    blink_pulse = _pulses(rng, n_samples, sfreq, 3.5, 0.15)
    psi, jaw = compose_face(level[:, None] * recipe[None] * gain[None], rest, talk, blink_pulse, jaw_idx, blink)
    return {"psi": psi, "jaw": jaw, "level": level, "rest": rest, "blink": blink_pulse, "talk": talk, "side": side}


def surrogate_faces(rng: np.random.Generator, model: FaceModel, tasks: Sequence[str], n_samples: int, sfreq: float,
                    gains: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The face-independent EMG actions (trials, n_samples, 2), unit mean per column: for each trial
    a separately generated face of the same task, a random subject (``gains`` (subjects, 53)) and an
    emotion drawn uniformly at random, independent of the trial's own (module docstring, step 3).
    Returns the actions and the drawn emotions and subjects (0-based)."""
    n = len(tasks)
    emotion = rng.integers(len(EAV_CLASSES), size=n)
    subject = rng.integers(len(gains), size=n)
    actions = np.zeros((n, n_samples, 2))
    for i, task in enumerate(tasks):
        face = _trial_face(rng, model, int(subject[i]), task, int(emotion[i]), n_samples, sfreq, gains[subject[i]])
        actions[i] = face_actions(face["psi"], face["jaw"], model.expression_names)
    actions /= np.maximum(actions.mean(axis=(0, 1), keepdims=True), 1e-9)
    return actions, emotion.astype(np.int64), subject.astype(np.int64)


def arousal_rhythm(rng: np.random.Generator, arousal: np.ndarray, n_samples: int, sfreq: float,
                   ch_names: Sequence[str]) -> np.ndarray:
    """The planted arousal rhythm (trials, channels, n_samples) in uV: band-limited noise in
    :data:`AROUSAL_BAND`, spatially correlated like the simulator's rhythms
    (:func:`affectlab.data.generate.eeg.spatial_mixing`), unit RMS x :data:`AROUSAL_RMS_UV` x
    ``exp(0.5 * (AROUSAL_LN_PER_UNIT * arousal + jitter))``: below the 20-45 Hz EMG band, so EMG
    and arousal cannot be mistaken for each other."""
    from affectlab.data.generate.eeg import EMG_BAND, _band_noise, spatial_mixing

    if AROUSAL_BAND[1] >= EMG_BAND[0]:
        raise GenerationError(f"AROUSAL_BAND {AROUSAL_BAND} must lie below the EMG band {EMG_BAND}")
    arousal = np.asarray(arousal, dtype=np.float64)
    shape = (len(arousal), len(ch_names), n_samples)
    source = _band_noise(rng, shape, sfreq, AROUSAL_BAND)  # the simulator's band-limited noise
    source = np.einsum("ij,tjs->tis", spatial_mixing(ch_names), source)
    source /= np.maximum(np.sqrt(np.mean(source**2, axis=-1, keepdims=True)), 1e-12)
    ln_power = AROUSAL_LN_PER_UNIT * arousal + rng.normal(0.0, AROUSAL_JITTER, size=len(arousal))
    return AROUSAL_RMS_UV * np.exp(0.5 * ln_power)[:, None, None] * source


def generate_paired(
    n_subjects: int = 3,
    trials_per_emotion: int = 2,
    seconds: float = 5.0,
    sfreq: float = 100.0,
    fps: float = 10.0,
    tasks: Sequence[str] = ("speaking",),
    coupling: float = 1.0,
    background: np.ndarray | None = None,
    render: bool = True,
    size: int = 64,
    head_motion_deg: float = 3.0,
    ch_names: Sequence[str] | None = None,
    seed: int = 0,
    model: FaceModel | None = None,
) -> PairedSequences:
    """EAV-like paired trials: subjects x tasks x 5 emotions x ``trials_per_emotion``.

    Args:
        seconds, sfreq, fps: trial length, EEG rate and frame rate (``sfreq / fps`` must be an
            integer: each frame stands for that many EEG samples, as in EEG2Face Sec. 3.1).
        tasks: any of "listening", "speaking" (talking jaw only in speaking trials).
        coupling: EMG-to-face amplitude ratio (>= 0; 0 = EMG unrelated to the face).
        background: optional real EEG (trials, channels, samples) replacing the simulated one.
        render: render frames (``size`` px); False leaves ``frames`` None (faster).
        ch_names: EEG channels (default EAV's 30, :data:`affectlab.data.eeg.EAV_CHANNELS`).
    """
    from affectlab.data.eeg import EAV_CHANNELS
    from affectlab.data.generate.eeg import simulate_eeg

    for name, value in (("n_subjects", n_subjects), ("trials_per_emotion", trials_per_emotion)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GenerationError(f"parameter {name} must be a positive int; got {value!r}")
    step = sfreq / fps
    if fps <= 0 or abs(step - round(step)) > 1e-9:
        raise GenerationError(f"parameters sfreq={sfreq} and fps={fps}: sfreq / fps must be a whole number")
    step = int(round(step))
    n_samples = int(round(seconds * sfreq))
    if n_samples < step or n_samples % step:
        raise GenerationError(f"parameter seconds={seconds}: samples ({n_samples}) must be a multiple of {step}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise GenerationError(f"parameter tasks must be a non-empty subset of {TASKS}; got {tuple(tasks)}")
    if not np.isfinite(coupling) or coupling < 0:
        raise GenerationError(f"parameter coupling must be >= 0; got {coupling}")
    model = model or packaged_model()
    names = model.expression_names
    ch = tuple(ch_names) if ch_names is not None else EAV_CHANNELS
    rng = np.random.default_rng(seed)
    beta, look = draw_identities(n_subjects, model, rng)

    rows = [(s, t, e) for s in range(n_subjects) for t in tasks for e in range(len(EAV_CLASSES))
            for _ in range(trials_per_emotion)]
    n = len(rows)
    if background is not None and np.shape(background) != (n, len(ch), n_samples):
        raise GenerationError(
            f"parameter background must have shape (trials={n}, channels={len(ch)}, samples={n_samples}); "
            f"got {np.shape(background)}"
        )
    psi_all = np.zeros((n, n_samples, model.n_expression), dtype=np.float32)
    jaw_all = np.zeros((n, n_samples, 3), dtype=np.float32)
    emotion = np.array([e for _, _, e in rows], dtype=np.int64)
    task = np.array([TASKS.index(t) for _, t, _ in rows], dtype=np.int64)
    subject = np.array([s for s, _, _ in rows], dtype=np.int64)
    va = np.array([CIRCUMPLEX_VA[EAV_CLASSES[e]] for e in emotion], dtype=np.float32)
    frame_idx = np.arange(0, n_samples, step)
    level_all = np.zeros((n, len(frame_idx)), dtype=np.float32)
    rest_all = np.zeros((n, len(frame_idx), model.n_expression), dtype=np.float32)
    blink_all = np.zeros((n, len(frame_idx)), dtype=np.float32)
    talk_frames = np.zeros((n, len(frame_idx), 3), dtype=np.float32)
    sides = np.zeros(n, dtype="<U1")
    gains = np.stack([np.asarray(look.gain[s], dtype=np.float64) for s in range(n_subjects)])
    for i, (s, t, e) in enumerate(rows):
        face = _trial_face(rng, model, s, t, e, n_samples, sfreq, gains[s])
        sides[i] = face["side"]
        psi_all[i], jaw_all[i] = face["psi"], face["jaw"]
        level_all[i], rest_all[i], blink_all[i] = face["level"][frame_idx], face["rest"][frame_idx], face["blink"][frame_idx]
        talk_frames[i] = face["talk"][frame_idx]

    actions = face_actions(psi_all, jaw_all, names)
    actions /= np.maximum(actions.mean(axis=(0, 1), keepdims=True), 1e-9)
    surrogate, surrogate_emotion, surrogate_subject = surrogate_faces(rng, model, [t for _, t, _ in rows], n_samples,
                                                                      sfreq, gains)
    drive = ((coupling * actions + surrogate) / (coupling + 1.0)).astype(np.float32)
    eeg = simulate_eeg(n, seconds, sfreq, va[:, 0], np.zeros(n), emg_drive=drive, ch_names=ch,
                       seed=int(rng.integers(2**31)), background=background)
    eeg_data = eeg.data + arousal_rhythm(rng, va[:, 1], n_samples, sfreq, ch).astype(np.float32)

    blend = psi_all[:, frame_idx]
    jaw_frames = jaw_all[:, frame_idx]
    frames = None
    if render:
        frames = _render_frames(model, beta, look, subject, blend, jaw_frames, size, head_motion_deg, rng)
    return PairedSequences(
        eeg=eeg_data,
        frames=frames,
        blendshapes=blend.astype(np.float32),
        jaw=jaw_frames.astype(np.float32),
        emotion=emotion,
        task=task,
        subject=subject + 1,
        valence=va[:, 0],
        arousal=va[:, 1],
        emg_drive=drive,
        face_actions=actions.astype(np.float32),
        ch_names=ch,
        sfreq=float(sfreq),
        fps=float(fps),
        coupling=float(coupling),
        blendshape_names=names,
        source=(
            f"generated (EAV-like paired EEG + face): {n_subjects} subjects x {len(tasks)} tasks x 5 emotions x "
            f"{trials_per_emotion} trials of {seconds} s, EEG {sfreq} Hz, frames {fps} fps, coupling {coupling}, "
            f"background {'given' if background is not None else 'simulated'}, seed {seed}"
        ),
        meta={"circumplex_source": CIRCUMPLEX_SOURCE, "paired_version": PAIRED_VERSION,
              "eeg_meta": eeg.meta, "beta": beta.numpy(), "arousal_band_hz": AROUSAL_BAND,
              "surrogate_emotion": surrogate_emotion, "surrogate_subject": surrogate_subject + 1},
        reposing=FaceComponents(level=level_all, rest=rest_all, blink=blink_all, talk=talk_frames,
                                side=sides, gain=gains),
    )


def _render_frames(model: FaceModel, beta: torch.Tensor, look: Any, subject: np.ndarray, blend: np.ndarray,
                   jaw: np.ndarray, size: int, head_motion_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Frames (trials, T, 1, size, size): fixed per-subject crop, slow head motion, fixed light."""
    n, t_frames = blend.shape[:2]
    out = np.zeros((n, t_frames, 1, size, size), dtype=np.uint8)
    for i in range(n):
        s = int(subject[i])
        neutral = model.vertices(beta[s:s + 1])
        frame = model.frame_points(neutral)
        walk = np.cumsum(rng.normal(0.0, 0.4, size=(t_frames, 3)), axis=0)
        walk = head_motion_deg * np.tanh(walk / max(head_motion_deg, 1e-6))
        verts = model.vertices(beta[s:s + 1], torch.as_tensor(blend[i]), torch.as_tensor(jaw[i]))
        tt = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        out[i] = render_face(
            model, verts, size=size, frame_points=frame,
            appearance={"skin": float(look.skin[s]), "brows": float(look.brows[s]), "lips": float(look.lips[s])},
            yaw=tt(walk[:, 0]), pitch=tt(0.6 * walk[:, 1]), roll=tt(0.3 * walk[:, 2]),
            light=(0.2, 0.4, 1.0), ambient=0.35, background=0.45,
        ).numpy()
    return out
