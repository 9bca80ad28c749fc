"""Generated EEG with planted ground truth: the book's embedded default when no data root is given.

Two generators, both seeded and deterministic:

- :func:`simulate_eeg`: multichannel signals (trials, channels, samples) in microvolts.
- :func:`generate_band_power_set`: DEAP-like log band-power features (trials, 5 bands, 32 channels)
  with binary and continuous valence/arousal and emotion categories, for chapter 01's EEG teacher.

Montage: DEAP's 32 Biosemi 10-20 channels by default (:data:`affectlab.data.eeg.DEAP_CHANNELS`);
positions from MNE's standard 10-20 montage (head frame, metres). Any 10-20/10-05 names work.

What is PLANTED (natural-log power units; v = valence, a = arousal, both in [-1, 1]):

1. Background (signals): pink noise, power ~ 1/f (flat below 0.5 Hz), RMS ``PINK_RMS_UV`` = 10 uV
   per channel, spatially correlated with corr(i, j) = exp(-d_ij / ``SPATIAL_LENGTH_M``), d_ij the
   3-D distance between electrodes, ``SPATIAL_LENGTH_M`` = 0.03 m. The same correlation mixes the
   rhythms below and, in the feature set, the trial noise.
2. Rhythms (signals): band-limited Gaussian noise in alpha 8-12 Hz (RMS 4 uV at the most anterior
   channel rising linearly to 8 uV at the most posterior), beta 13-30 Hz (RMS 3 uV) and gamma
   30-45 Hz (RMS 1.5 uV; upper edge capped at 0.45 x sfreq).
3. Valence -> frontal alpha asymmetry (Davidson's approach/withdrawal model: positive affect =
   relatively more left-frontal activity = less left-frontal alpha):
   ln P_alpha(right frontal) - ln P_alpha(left frontal) = ``ALPHA_ASYMMETRY`` * v, ALPHA_ASYMMETRY =
   1.0, applied half to each side (right x exp(+v/2), left x exp(-v/2) in power). Right frontal =
   Fp2, AF4, AF8, F4, F8 (and F2, F6, F10 when present), left = their odd-numbered mirrors; frontal
   means a name starting with Fp, AF or F but not FC/FT. Hence F4 - F3 alpha log power rises with v.
   In the feature set the asymmetry is planted in both "alpha" and "slow_alpha".
4. Arousal -> fast activity, less alpha, on every channel: ln P_beta += ``BETA_AROUSAL`` (0.6) * a,
   ln P_gamma += ``GAMMA_AROUSAL`` (0.8) * a, ln P_alpha -= ``ALPHA_AROUSAL`` (0.4) * a.
   Theta carries no effect.
5. Per-trial nuisance: each rhythm's ln power jitters by N(0, ``TRIAL_JITTER``^2 = 0.1^2) per trial,
   common to all channels (so asymmetries are not affected).
6. EMG (signals, only when ``emg_drive`` is given): broadband 20-45 Hz noise (upper edge capped at
   0.45 x sfreq), independent per channel (muscle activity is local), amplitude = ``emg_gain_uv``
   (default 20 uV RMS) x drive(t) with negative drive clipped to 0. Drive column j feeds
   ``emg_groups[j]``; by default even columns -> :data:`TEMPORAL_EMG_CHANNELS` (temporalis/masseter:
   jaw and mouth actions) and odd columns -> :data:`FRONTAL_EMG_CHANNELS` (frontalis/corrugator:
   brow actions), restricted to the channels present.

Measured band power also contains the pink background, so the slope of measured F4 - F3 alpha log
power on valence in :func:`simulate_eeg` output is below 1.0 (0.6-0.9 over seeds at the default
amplitudes, 60 trials of 4 s at 128 Hz, Welch 2 s windows; correlation with valence 0.7-0.86);
in :func:`generate_band_power_set` the slope is 1.0 and the correlation about 0.65 (noise).

Feature set (:func:`generate_band_power_set`): log band power (natural log, DEAP-release-like
levels) = ``BAND_BASE_LN`` per band (theta 5.2, slow_alpha 4.3, alpha 5.0, beta 5.2, gamma 3.7)
+ 0.5 x posteriority for the alpha bands (0 at the most anterior channel, 1 at the most posterior)
+ a subject offset (per band N(0, 0.5^2) + spatially correlated per band/channel N(0, 0.3^2))
+ the planted effects 3-4 + trial noise (spatially correlated N(0, 0.35^2) + independent
N(0, 0.1^2)). Each trial has an emotion category (balanced over the 8 FERPlus classes by default)
whose circumplex point (:data:`affectlab.data.taxonomy.CIRCUMPLEX_VA`, source in
``CIRCUMPLEX_SOURCE``) plus N(0, ``VA_JITTER``^2 = 0.15^2), clipped to [-1, 1], is the trial's true
(valence, arousal); ``valence_binary`` = v > 0 and ``arousal_binary`` = a > 0 (1 = positive/high).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from affectlab.data.eeg import DEAP_CHANNELS, FEATURE_BANDS
from affectlab.data.sets import EEGSet
from affectlab.data.taxonomy import CIRCUMPLEX_SOURCE, CIRCUMPLEX_VA, FERPLUS_CLASSES
from affectlab.topomap import electrode_positions_3d

PINK_RMS_UV = 10.0
SPATIAL_LENGTH_M = 0.03
ALPHA_BAND = (8.0, 12.0)
BETA_BAND = (13.0, 30.0)
GAMMA_BAND = (30.0, 45.0)
EMG_BAND = (20.0, 45.0)
ALPHA_RMS_UV = (4.0, 8.0)  # most anterior -> most posterior channel
BETA_RMS_UV = 3.0
GAMMA_RMS_UV = 1.5
ALPHA_ASYMMETRY = 1.0
ALPHA_AROUSAL = 0.4
BETA_AROUSAL = 0.6
GAMMA_AROUSAL = 0.8
TRIAL_JITTER = 0.1
EMG_GAIN_UV = 20.0
VA_JITTER = 0.15
BAND_BASE_LN: dict[str, float] = {"theta": 5.2, "slow_alpha": 4.3, "alpha": 5.0, "beta": 5.2, "gamma": 3.7}
POSTERIOR_ALPHA_LN = 0.5
SUBJECT_BAND_SD = 0.5
SUBJECT_CHANNEL_SD = 0.3
TRIAL_NOISE_SD = 0.35
TRIAL_INDEPENDENT_SD = 0.1

FRONTAL_EMG_CHANNELS: tuple[str, ...] = ("Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8")
TEMPORAL_EMG_CHANNELS: tuple[str, ...] = (
    "F7", "F8", "FT7", "FT8", "FT9", "FT10", "FC5", "FC6", "T7", "T8", "TP7", "TP8", "TP9", "TP10",
)  # fmt: skip

#: The planted constants, for captions and recovery tests.
PLANTED: dict[str, float | str] = {
    "alpha_asymmetry_ln_per_valence": ALPHA_ASYMMETRY,
    "alpha_ln_per_arousal": -ALPHA_AROUSAL,
    "beta_ln_per_arousal": BETA_AROUSAL,
    "gamma_ln_per_arousal": GAMMA_AROUSAL,
    "trial_jitter_ln_sd": TRIAL_JITTER,
    "spatial_length_m": SPATIAL_LENGTH_M,
    "pink_rms_uv": PINK_RMS_UV,
    "asymmetry_sides": "right frontal = even Fp/AF/F channels, left = odd ones",
}


def frontal_side(ch_name: str) -> int:
    """+1 right frontal, -1 left frontal, 0 otherwise (10-20 names: odd = left, even = right)."""
    match = re.fullmatch(r"(Fp|AF|F)(\d+)", ch_name.strip(), flags=re.IGNORECASE)
    if match is None:
        return 0
    return 1 if int(match.group(2)) % 2 == 0 else -1


def spatial_mixing(ch_names: Sequence[str]) -> np.ndarray:
    """Cholesky factor L of corr(i, j) = exp(-d_ij / SPATIAL_LENGTH_M); L @ white = correlated."""
    xyz = electrode_positions_3d(ch_names)
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    corr = np.exp(-d / SPATIAL_LENGTH_M)
    return np.linalg.cholesky(corr + 1e-9 * np.eye(len(ch_names)))


def posteriority(ch_names: Sequence[str]) -> np.ndarray:
    """0 at the most anterior channel, 1 at the most posterior (by the y coordinate)."""
    y = electrode_positions_3d(ch_names)[:, 1]
    span = y.max() - y.min()
    return (y.max() - y) / span if span > 0 else np.zeros(len(y))


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(x**2, axis=-1, keepdims=True))
    return x / np.maximum(rms, 1e-12)


def _band_noise(rng: np.random.Generator, shape: tuple[int, ...], sfreq: float, band: tuple[float, float]) -> np.ndarray:
    """Gaussian noise restricted to ``band`` (FFT mask), unit RMS along the last axis."""
    n = shape[-1]
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    spectrum[..., (freqs < band[0]) | (freqs > band[1])] = 0.0
    return _unit_rms(np.fft.irfft(spectrum, n=n, axis=-1))


def _pink_noise(rng: np.random.Generator, shape: tuple[int, ...], sfreq: float, f_floor: float = 0.5) -> np.ndarray:
    """Noise with power ~ 1/f (flat below ``f_floor``), zero mean, unit RMS along the last axis."""
    n = shape[-1]
    spectrum = np.fft.rfft(rng.standard_normal(shape), axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    spectrum *= 1.0 / np.sqrt(np.maximum(freqs, f_floor))
    spectrum[..., 0] = 0.0
    return _unit_rms(np.fft.irfft(spectrum, n=n, axis=-1))


def _as_va(values: Sequence[float] | np.ndarray | float, n: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)) if np.ndim(values) == 0 else np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"parameter {name} must have one value per trial ({n}); got shape {arr.shape}")
    if not np.isfinite(arr).all() or (np.abs(arr) > 1).any():
        raise ValueError(f"parameter {name} must be finite and in [-1, 1]")
    return np.array(arr)


def simulate_eeg(
    n_trials: int,
    seconds: float,
    sfreq: float,
    valence: Sequence[float] | np.ndarray | float,
    arousal: Sequence[float] | np.ndarray | float,
    emg_drive: np.ndarray | None = None,
    ch_names: Sequence[str] | None = None,
    seed: int = 0,
    emg_groups: Sequence[Sequence[str]] | None = None,
    emg_gain_uv: float = EMG_GAIN_UV,
    background: np.ndarray | None = None,
) -> EEGSet:
    """Signals (n_trials, channels, seconds x sfreq) in uV with the effects of the module docstring.

    ``emg_drive`` (n_trials, samples, k) modulates EMG bursts on the channels of ``emg_groups``
    (default: even columns temporal, odd columns frontal). ``background`` (n_trials, channels,
    samples) in uV replaces the simulated pink background (e.g. a real recording). The returned
    ``meta["emg_channels"]`` lists the channels each drive column reached.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"parameter n_trials must be a positive int; got {n_trials!r}")
    if not (isinstance(sfreq, (int, float)) and sfreq >= 40):
        raise ValueError(f"parameter sfreq must be >= 40 Hz (alpha and beta must fit); got {sfreq!r}")
    n_samples = int(round(seconds * sfreq))
    if n_samples < 16:
        raise ValueError(f"parameter seconds={seconds!r} gives {n_samples} samples at {sfreq} Hz; need >= 16")
    names = tuple(ch_names) if ch_names is not None else DEAP_CHANNELS
    v = _as_va(valence, n_trials, "valence")
    a = _as_va(arousal, n_trials, "arousal")
    rng = np.random.default_rng(seed)
    mixing = spatial_mixing(names)
    n_ch = len(names)
    shape = (n_trials, n_ch, n_samples)

    if background is None:
        pink = _pink_noise(rng, shape, sfreq)
        signal = PINK_RMS_UV * _unit_rms(np.einsum("ij,tjs->tis", mixing, pink))
    else:
        background = np.asarray(background, dtype=np.float64)
        if background.shape != shape:
            raise ValueError(f"parameter background must have shape {shape}; got {background.shape}")
        if not np.isfinite(background).all():
            raise ValueError("parameter background contains NaN or inf")
        signal = background.copy()

    side = np.array([frontal_side(n) for n in names], dtype=np.float64)
    post = posteriority(names)
    nyq_cap = 0.45 * sfreq
    jitter = rng.normal(0.0, TRIAL_JITTER, size=(3, n_trials))
    rhythms = (
        ("alpha", ALPHA_BAND, ALPHA_RMS_UV[0] + (ALPHA_RMS_UV[1] - ALPHA_RMS_UV[0]) * post),
        ("beta", BETA_BAND, np.full(n_ch, BETA_RMS_UV)),
        ("gamma", (GAMMA_BAND[0], min(GAMMA_BAND[1], nyq_cap)), np.full(n_ch, GAMMA_RMS_UV)),
    )
    for k, (name, band, rms) in enumerate(rhythms):
        if band[0] >= band[1]:
            continue
        ln_power = np.zeros((n_trials, n_ch)) + jitter[k][:, None]
        if name == "alpha":
            ln_power += 0.5 * ALPHA_ASYMMETRY * v[:, None] * side[None, :]
            ln_power -= ALPHA_AROUSAL * a[:, None]
        elif name == "beta":
            ln_power += BETA_AROUSAL * a[:, None]
        else:
            ln_power += GAMMA_AROUSAL * a[:, None]
        source = _unit_rms(np.einsum("ij,tjs->tis", mixing, _band_noise(rng, shape, sfreq, band)))
        signal += source * (rms[None, :] * np.exp(0.5 * ln_power))[:, :, None]

    emg_channels: list[list[str]] = []
    if emg_drive is not None:
        drive = np.asarray(emg_drive, dtype=np.float64)
        if drive.ndim != 3 or drive.shape[:2] != (n_trials, n_samples):
            raise ValueError(
                f"parameter emg_drive must be (n_trials={n_trials}, samples={n_samples}, k); got {drive.shape}"
            )
        if not np.isfinite(drive).all():
            raise ValueError("parameter emg_drive contains NaN or inf")
        groups = list(emg_groups) if emg_groups is not None else [
            TEMPORAL_EMG_CHANNELS if j % 2 == 0 else FRONTAL_EMG_CHANNELS for j in range(drive.shape[2])
        ]
        if len(groups) != drive.shape[2]:
            raise ValueError(f"parameter emg_groups has {len(groups)} groups for {drive.shape[2]} drive columns")
        emg_band = (EMG_BAND[0], min(EMG_BAND[1], nyq_cap))
        lower = {n.lower(): i for i, n in enumerate(names)}
        for j, group in enumerate(groups):
            idx = sorted({lower[g.lower()] for g in group if g.lower() in lower})
            if not idx:
                raise ValueError(f"EMG group {j} ({list(group)}) has no channel among {names}")
            emg_channels.append([names[i] for i in idx])
            bursts = _band_noise(rng, (n_trials, len(idx), n_samples), sfreq, emg_band)
            envelope = np.clip(drive[:, :, j], 0.0, None)[:, None, :]
            signal[:, idx] += emg_gain_uv * envelope * bursts

    return EEGSet(
        data=signal.astype(np.float32),
        kind="signal",
        ch_names=names,
        name="generated_eeg",
        split="all",
        source=(
            f"generated: simulate_eeg(n_trials={n_trials}, seconds={seconds}, sfreq={sfreq}, seed={seed}, "
            f"emg={'yes' if emg_drive is not None else 'no'}, background={'given' if background is not None else 'pink'})"
        ),
        sfreq=float(sfreq),
        labels={"valence": v.astype(np.float32), "arousal": a.astype(np.float32)},
        assumptions=("Simulated EEG; planted effects listed in affectlab.data.generate.eeg",),
        meta={"unit": "uV", "planted": dict(PLANTED), "emg_channels": emg_channels},
    )


def generate_band_power_set(
    n_subjects: int = 32,
    trials_per_subject: int = 40,
    seed: int = 0,
    class_names: Sequence[str] = FERPLUS_CLASSES,
) -> EEGSet:
    """DEAP-like log band-power features (trials, 5, 32) with planted V/A effects (module docstring).

    Labels: ``valence``/``arousal`` (true continuous, float32), ``valence_binary``/``arousal_binary``
    (1 = positive/high), ``emotion`` (index into ``class_names``), ``video`` (1..trials_per_subject);
    ``subject`` 1..n_subjects. ``meta["circumplex"]`` maps each class to its (valence, arousal).
    """
    for name, value in (("n_subjects", n_subjects), ("trials_per_subject", trials_per_subject)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"parameter {name} must be a positive int; got {value!r}")
    unknown = [c for c in class_names if c not in CIRCUMPLEX_VA]
    if unknown:
        raise ValueError(f"parameter class_names: {unknown} have no circumplex point; known {sorted(CIRCUMPLEX_VA)}")
    rng = np.random.default_rng(seed)
    names = DEAP_CHANNELS
    bands = FEATURE_BANDS
    n_ch, n_b = len(names), len(bands)
    mixing = spatial_mixing(names)
    side = np.array([frontal_side(n) for n in names], dtype=np.float64)
    post = posteriority(names)
    alpha_bands = np.array([b in ("alpha", "slow_alpha") for b in bands], dtype=np.float64)
    base = np.array([BAND_BASE_LN[b] for b in bands])[:, None] + POSTERIOR_ALPHA_LN * alpha_bands[:, None] * post[None]
    centres = np.array([CIRCUMPLEX_VA[c] for c in class_names], dtype=np.float64)

    n = n_subjects * trials_per_subject
    emotion = np.concatenate(
        [rng.permutation(np.arange(trials_per_subject) % len(class_names)) for _ in range(n_subjects)]
    )
    va = np.clip(centres[emotion] + rng.normal(0.0, VA_JITTER, size=(n, 2)), -1.0, 1.0)
    v, a = va[:, 0], va[:, 1]
    subject = np.repeat(np.arange(1, n_subjects + 1), trials_per_subject)

    offsets = rng.normal(0.0, SUBJECT_BAND_SD, size=(n_subjects, n_b, 1)) + SUBJECT_CHANNEL_SD * np.einsum(
        "ij,sbj->sbi", mixing, rng.standard_normal((n_subjects, n_b, n_ch))
    )
    noise = TRIAL_NOISE_SD * np.einsum("ij,tbj->tbi", mixing, rng.standard_normal((n, n_b, n_ch)))
    noise += rng.normal(0.0, TRIAL_INDEPENDENT_SD, size=(n, n_b, n_ch))
    effect = np.zeros((n, n_b, n_ch))
    for b, band in enumerate(bands):
        if band in ("alpha", "slow_alpha"):
            effect[:, b] += 0.5 * ALPHA_ASYMMETRY * v[:, None] * side[None]
            effect[:, b] -= ALPHA_AROUSAL * a[:, None]
        elif band == "beta":
            effect[:, b] += BETA_AROUSAL * a[:, None]
        elif band == "gamma":
            effect[:, b] += GAMMA_AROUSAL * a[:, None]
    data = base[None] + offsets[subject - 1] + effect + noise
    return EEGSet(
        data=data.astype(np.float32),
        kind="band_power",
        ch_names=names,
        name="generated_band_power",
        split="all",
        source=(
            f"generated: generate_band_power_set(n_subjects={n_subjects}, trials_per_subject="
            f"{trials_per_subject}, seed={seed})"
        ),
        bands=bands,
        labels={
            "valence": v.astype(np.float32),
            "arousal": a.astype(np.float32),
            "valence_binary": (v > 0).astype(np.int64),
            "arousal_binary": (a > 0).astype(np.int64),
            "emotion": emotion.astype(np.int64),
            "video": np.tile(np.arange(1, trials_per_subject + 1), n_subjects).astype(np.int64),
        },
        subject=subject.astype(np.int64),
        assumptions=(
            "Generated features (natural-log band power); planted effects listed in affectlab.data.generate.eeg",
            "Channel order = DEAP's published order, as assumed for the real feature files",
        ),
        meta={
            "class_names": tuple(class_names),
            "circumplex": {c: [float(x) for x in CIRCUMPLEX_VA[c]] for c in class_names},
            "circumplex_source": CIRCUMPLEX_SOURCE,
            "planted": dict(PLANTED),
            "label_meaning": {
                "valence_binary": "1 = positive (valence > 0), 0 = negative",
                "arousal_binary": "1 = high (arousal > 0), 0 = low",
            },
        },
    )
