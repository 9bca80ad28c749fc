"""EEG loaders: DEAP/MAHNOB-HCI band-power features, DREAMER, EAV, the EEGLAB sample, raw EDF/BDF/SET.

Every registry loader has the signature ``loader(dataset_dir, split, manifest) -> EEGSet`` and takes
expected shapes and parameters from the manifest's ``[params]`` table (``data_manifests/*.toml``).
Signals are float32 in microvolts, (trials, channels, samples); features are float32
(trials, bands, channels). Bad files raise :class:`DatasetValidationError` naming the file.

- DEAP / MAHNOB-HCI features (the teacher data of NeuroGaze-Distill, Sec. 3): ``EEG_feature.txt``
  rows of 160 log band powers (columns 1-32 theta, 33-64 slow alpha, 65-96 alpha, 97-128 beta,
  129-160 gamma) -> (rows, 5, 32). Label codes are converted to explicit binaries:
  ``valence_binary`` 1 = positive (file code 1), 0 = negative (code 2); ``arousal_binary``
  1 = high (code 1), 0 = low (code 2). The electrode order is not documented by the source; DEAP's
  published Biosemi order (:data:`DEAP_CHANNELS`) is assumed and stated in ``EEGSet.assumptions``.
- DREAMER (Katsigiannis & Ramzan 2018): 23 subjects x 18 film clips, Emotiv EPOC 14 channels at
  128 Hz; each trial is cropped to its LAST ``crop_seconds`` (60 s: the shortest clip lasts 65 s),
  the per-trial channel mean (Emotiv's ~4,200 uV DC offset) is removed, and the 1-5 ratings are
  rescaled linearly to [-1, 1] as NeuroGaze-Distill Sec. 3 ("We linearly map reported V/A to
  [-1, 1]"): ``(score - 3) / 2``.
- EAV (Lee et al. 2024, Sci. Data 11:1026): 42 subjects, 30-channel EEG at 500 Hz, 200 trials of
  20 s (5 emotions x listening/speaking x 20). Preprocessing follows the dataset's public loader
  (github.com/nubcico/EAV, ``Dataload_eeg.py``): trials concatenated in time, resampled
  500 -> 100 Hz with ``resample_poly``, band-passed 0.5-45 Hz with a causal 5th-order Butterworth
  (``sosfilt``), then cut into 5 s segments.
- EEGLAB sample (``eeglab_data.set`` + ``.fdt``): 32 channels (30 EEG + EOG1, EOG2) at 128 Hz.
"""

from __future__ import annotations

import re
import warnings
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.io
from scipy.signal import butter, resample_poly, sosfilt

from affectlab.data.manifest import DatasetValidationError
from affectlab.data.sets import EEGSet
from affectlab.data.taxonomy import CIRCUMPLEX_VA, EAV_CLASSES, MAHNOB_CATEGORIES, MAHNOB_TO_FERPLUS

#: DEAP's published 32-channel Biosemi order (Koelstra et al. 2012, data_preprocessed readme).
DEAP_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1", "Oz", "Pz",
    "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)  # fmt: skip

#: Band order of the DEAP/MAHNOB feature files (see :data:`affectlab.topomap.FEATURE_BANDS`).
FEATURE_BANDS: tuple[str, ...] = ("theta", "slow_alpha", "alpha", "beta", "gamma")

#: Emotiv EPOC channel order of DREAMER.
EMOTIV_CHANNELS: tuple[str, ...] = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip

#: EAV channel order ASSUMED: Brain Products' standard 32-channel actiCAP 10-20 layout without the
#: mastoids TP9/TP10. The dataset's .mat files carry no channel names; override in the manifest.
EAV_CHANNELS: tuple[str, ...] = (
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8",
    "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10",
)  # fmt: skip

#: EAV tasks, in the order of the ``task`` label codes.
EAV_TASKS: tuple[str, ...] = ("listening", "speaking")

#: MAHNOB-HCI categories in label-index order, and their file codes.
MAHNOB_CODES: tuple[int, ...] = tuple(sorted(MAHNOB_CATEGORIES))
MAHNOB_CLASSES: tuple[str, ...] = tuple(MAHNOB_CATEGORIES[c] for c in MAHNOB_CODES)

_VOLT_TYPES = ("eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "bio")


def _params(manifest: dict) -> dict:
    return dict(manifest.get("params", {}))


def _check_split(manifest: dict, split: str) -> None:
    splits = manifest.get("splits", ["all"])
    if split not in splits:
        raise ValueError(f"{manifest.get('name', 'dataset')}: split {split!r} unknown; choose one of {splits}")


def _va_from_category(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    va = np.array([CIRCUMPLEX_VA[n] for n in names], dtype=np.float32).reshape(-1, 2)
    return va[:, 0], va[:, 1]


# --------------------------------------------------------------------------------------------------
# DEAP / MAHNOB-HCI band-power feature files
# --------------------------------------------------------------------------------------------------


def read_numeric_table(path: Path, n_columns: int, integer: bool = False) -> np.ndarray:
    """Rows of a whitespace-separated text table (blank lines skipped).

    Errors name the file and the 1-based line: missing file, wrong column count, unparsable or
    non-finite (NaN/inf) value.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetValidationError(f"{path}: file missing")
    try:  # fast path (C parser); any problem falls through to the line-by-line check below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = np.loadtxt(path, dtype=np.float64, ndmin=2)
        if fast.shape[0] > 0 and fast.shape[1] == n_columns and np.isfinite(fast).all():
            if not integer:
                return fast
            if (fast == np.round(fast)).all():
                return fast.astype(np.int64)
    except ValueError:
        pass
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DatasetValidationError(f"{path}: not a UTF-8 text table") from None
    rows: list[list[float]] = []
    for line_no, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != n_columns:
            raise DatasetValidationError(
                f"{path}: line {line_no} has {len(parts)} columns, expected {n_columns}"
            )
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise DatasetValidationError(f"{path}: line {line_no} holds a non-numeric value: {line.strip()[:80]!r}") from None
        bad = [i + 1 for i, v in enumerate(values) if not np.isfinite(v)]
        if bad:
            raise DatasetValidationError(f"{path}: line {line_no} has NaN/inf in column(s) {bad[:5]}")
        if integer and any(v != int(v) for v in values):
            raise DatasetValidationError(f"{path}: line {line_no} must hold integers, got {line.strip()!r}")
        rows.append(values)
    if not rows:
        raise DatasetValidationError(f"{path}: file is empty")
    table = np.asarray(rows, dtype=np.float64)
    return table.astype(np.int64) if integer else table


def _binary_from_codes(codes: np.ndarray, path: Path, column: str, high_code: int = 1, low_code: int = 2) -> np.ndarray:
    bad = np.flatnonzero(~np.isin(codes, (high_code, low_code)))
    if len(bad):
        raise DatasetValidationError(
            f"{path}: {column} code {codes[bad[0]]} on row {bad[0] + 1}; expected {high_code} or {low_code}"
        )
    return (codes == high_code).astype(np.int64)


def _load_feature_folder(dataset_dir: Path, split: str, manifest: dict, with_categories: bool) -> EEGSet:
    _check_split(manifest, split)
    params = _params(manifest)
    bands = tuple(params.get("bands", FEATURE_BANDS))
    ch_names = tuple(params.get("ch_names", DEAP_CHANNELS))
    n_cols = len(bands) * len(ch_names)
    feature_path = dataset_dir / params.get("feature_file", "EEG_feature.txt")
    sv_path = dataset_dir / params.get("subject_video_file", "subject_video.txt")
    va_path = dataset_dir / params.get("label_file", "valence_arousal_label.txt")
    features = read_numeric_table(feature_path, n_cols)
    subject_video = read_numeric_table(sv_path, 2, integer=True)
    va_codes = read_numeric_table(va_path, 2, integer=True)
    tables = [(feature_path, features), (sv_path, subject_video), (va_path, va_codes)]
    if with_categories:
        cat_path = dataset_dir / params.get("category_file", "EEG_emotion_category.txt")
        categories = read_numeric_table(cat_path, 1, integer=True)[:, 0]
        tables.append((cat_path, categories))
    n = len(features)
    for path, table in tables[1:]:
        if len(table) != n:
            raise DatasetValidationError(
                f"row counts disagree: {feature_path} has {n} rows but {path} has {len(table)}"
            )
    expected = params.get("rows")
    if expected is not None and n != int(expected):
        raise DatasetValidationError(f"{feature_path}: {n} rows, the manifest expects {expected}")
    data = features.reshape(n, len(bands), len(ch_names)).astype(np.float32)
    labels: dict[str, np.ndarray] = {
        "valence_binary": _binary_from_codes(va_codes[:, 0], va_path, "valence"),
        "arousal_binary": _binary_from_codes(va_codes[:, 1], va_path, "arousal"),
        "video": subject_video[:, 1].astype(np.int64),
    }
    meta: dict[str, Any] = {
        "label_meaning": {
            "valence_binary": "1 = positive (file code 1), 0 = negative (file code 2)",
            "arousal_binary": "1 = high (file code 1), 0 = low (file code 2)",
        },
        "files": [str(p) for p, _ in tables],
    }
    assumptions = [
        "Electrode order not documented by the source; DEAP's published Biosemi 10-20 order is assumed: "
        + ", ".join(ch_names),
        "Values are the log band powers as provided (units undocumented); bands " + ", ".join(bands),
    ]
    if with_categories:
        index = {code: i for i, code in enumerate(MAHNOB_CODES)}
        bad = [i for i, c in enumerate(categories) if int(c) not in index]
        if bad:
            raise DatasetValidationError(
                f"{cat_path}: category code {categories[bad[0]]} on row {bad[0] + 1}; known codes {MAHNOB_CODES}"
            )
        labels["emotion"] = np.array([index[int(c)] for c in categories], dtype=np.int64)
        labels["emotion_code"] = categories.astype(np.int64)
        mapped = [MAHNOB_TO_FERPLUS[int(c)] for c in categories]
        labels["valence"], labels["arousal"] = _va_from_category(mapped)
        meta["class_names"] = MAHNOB_CLASSES
        meta["class_codes"] = MAHNOB_CODES
        assumptions.append(
            "Continuous valence/arousal are the circumplex point (affectlab.data.taxonomy.CIRCUMPLEX_VA) "
            "of each trial's category mapped to its FERPlus class (amusement -> happiness, anxiety -> "
            "fear, joy -> happiness): a category-level proxy, not a self-report"
        )
    return EEGSet(
        data=data,
        kind="band_power",
        ch_names=ch_names,
        name=manifest.get("name", dataset_dir.name),
        split=split,
        source=f"real: {dataset_dir}",
        bands=bands,
        labels=labels,
        subject=subject_video[:, 0].astype(np.int64),
        assumptions=tuple(assumptions),
        meta=meta,
    )


def load_deap_features(dataset_dir: Path, split: str, manifest: dict) -> EEGSet:
    """DEAP band-power features: (1,216, 5, 32) with valence/arousal binaries, subject and video."""
    return _load_feature_folder(Path(dataset_dir), split, manifest, with_categories=False)


def load_mahnob_features(dataset_dir: Path, split: str, manifest: dict) -> EEGSet:
    """MAHNOB-HCI band-power features: (533, 5, 32), plus emotion categories and their circumplex V/A."""
    return _load_feature_folder(Path(dataset_dir), split, manifest, with_categories=True)


# --------------------------------------------------------------------------------------------------
# Raw files through MNE
# --------------------------------------------------------------------------------------------------


def _check_eeglab_data_file(path: Path) -> None:
    """A .set whose data lives in a separate file (.fdt/.dat) must have it beside it."""
    try:
        mat = scipy.io.loadmat(path, simplify_cells=True, variable_names=["EEG", "data"], appendmat=False)
    except NotImplementedError:
        return  # MATLAB v7.3 (HDF5) .set: MNE reads it and reports missing files itself
    except Exception as exc:
        raise DatasetValidationError(f"{path}: not a readable EEGLAB .set file ({exc})") from None
    eeg = mat.get("EEG", mat)
    data_ref = eeg.get("data") if isinstance(eeg, dict) else None
    if isinstance(data_ref, str):
        data_file = path.parent / data_ref
        if not data_file.is_file():
            alternative = path.with_suffix(".fdt")
            if not alternative.is_file():
                raise DatasetValidationError(
                    f"{path}: its data file {data_file.name} is missing (expected {data_file})"
                )


def read_raw(path: str | Path) -> EEGSet:
    """One continuous recording (EDF, BDF or EEGLAB .set) as an EEGSet with trials = 1.

    Read with ``mne.io.read_raw_edf`` / ``read_raw_bdf`` / ``read_raw_eeglab``; electrophysiological
    channels are converted from MNE's volts to microvolts (``meta["unit"] = "uV"``); stim and misc
    channels are left as stored. ``meta`` holds channel types, annotations and, when the file has
    them, electrode positions (``ch_pos``, metres, MNE head frame; NaN rows = unknown).
    """
    import mne

    path = Path(path)
    if not path.is_file():
        raise DatasetValidationError(f"{path}: file missing")
    suffix = path.suffix.lower()
    readers = {".edf": mne.io.read_raw_edf, ".bdf": mne.io.read_raw_bdf, ".set": mne.io.read_raw_eeglab}
    if suffix not in readers:
        raise DatasetValidationError(f"{path}: unsupported file type {suffix!r}; expected .edf, .bdf or .set")
    if suffix == ".set":
        _check_eeglab_data_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            raw = readers[suffix](path, preload=True, verbose="error")
    except Exception as exc:
        raise DatasetValidationError(f"{path}: MNE could not read it ({type(exc).__name__}: {exc})") from None
    if suffix == ".set":
        eog = {n: "eog" for n in raw.ch_names if re.match(r"^(h|v)?eog", n, flags=re.IGNORECASE)}
        if eog:
            raw.set_channel_types(eog, verbose="error")
    types = raw.get_channel_types()
    data = raw.get_data()
    scale = np.array([1e6 if t in _VOLT_TYPES else 1.0 for t in types])[:, None]
    data = (data * scale).astype(np.float32)[None]
    if not np.isfinite(data).all():
        ch, sample = np.argwhere(~np.isfinite(data[0]))[0]
        raise DatasetValidationError(
            f"{path}: NaN/inf in channel {raw.ch_names[ch]} at sample {sample}"
        )
    ch_pos = np.array([ch["loc"][:3] for ch in raw.info["chs"]], dtype=np.float64)
    ch_pos[~np.isfinite(ch_pos).all(axis=1) | (np.abs(ch_pos).sum(axis=1) == 0)] = np.nan
    annotations = [
        {"onset": float(a["onset"]), "duration": float(a["duration"]), "description": str(a["description"])}
        for a in raw.annotations
    ]
    return EEGSet(
        data=data,
        kind="signal",
        ch_names=tuple(raw.ch_names),
        name=path.stem,
        split="all",
        source=f"real: {path}",
        sfreq=float(raw.info["sfreq"]),
        labels={},
        meta={
            "unit": "uV",
            "ch_types": tuple(types),
            "ch_pos": ch_pos,
            "annotations": annotations,
            "path": str(path),
        },
    )


def load_eeglab_sample(dataset_dir: Path, split: str, manifest: dict) -> EEGSet:
    """The EEGLAB tutorial recording: (1, 32, 30,504) at 128 Hz; positions from the ``.locs`` file.

    ``meta["ch_types"]`` marks EOG1/EOG2 as "eog" (drop them for scalp maps); ``meta["ch_pos"]``
    holds the positions of ``eeglab_chan32.locs`` (read with ``mne.channels.read_custom_montage``)
    when that file is present, else those stored in the .set.
    """
    import mne

    _check_split(manifest, split)
    dataset_dir = Path(dataset_dir)
    params = _params(manifest)
    set_path = dataset_dir / params.get("set_file", "eeglab_data.set")
    eeg = read_raw(set_path)
    expect_ch = params.get("n_channels")
    if expect_ch is not None and len(eeg.ch_names) != int(expect_ch):
        raise DatasetValidationError(f"{set_path}: {len(eeg.ch_names)} channels, the manifest expects {expect_ch}")
    expect_names = params.get("ch_names")
    if expect_names is not None and tuple(expect_names) != eeg.ch_names:
        raise DatasetValidationError(f"{set_path}: channels {eeg.ch_names}, the manifest expects {tuple(expect_names)}")
    expect_n = params.get("n_samples")
    if expect_n is not None and eeg.data.shape[-1] != int(expect_n):
        raise DatasetValidationError(f"{set_path}: {eeg.data.shape[-1]} samples, the manifest expects {expect_n}")
    expect_sf = params.get("sfreq")
    if expect_sf is not None and abs(eeg.sfreq - float(expect_sf)) > 1e-6:
        raise DatasetValidationError(f"{set_path}: sampling rate {eeg.sfreq} Hz, the manifest expects {expect_sf} Hz")
    locs_path = dataset_dir / params.get("locs_file", "eeglab_chan32.locs")
    if locs_path.is_file():
        try:
            montage = mne.channels.read_custom_montage(locs_path)
        except Exception as exc:
            raise DatasetValidationError(f"{locs_path}: not a readable EEGLAB .locs file ({exc})") from None
        pos = montage.get_positions()["ch_pos"]
        missing = [n for n in eeg.ch_names if n not in pos]
        if missing:
            raise DatasetValidationError(f"{locs_path}: no position for channels {missing}")
        eeg.meta["ch_pos"] = np.array([pos[n] for n in eeg.ch_names], dtype=np.float64)
        eeg.meta["montage_file"] = str(locs_path)
    eeg.name = manifest.get("name", "eeglab_sample")
    eeg.split = split
    eeg.source = f"real: {set_path}"
    eeg.assumptions = (
        "EEGLAB tutorial data: a visual attention task, not an emotion dataset",
        "EOG1 and EOG2 are eye channels (type 'eog'); use the 30 EEG channels for scalp maps",
    )
    return eeg


# --------------------------------------------------------------------------------------------------
# DREAMER
# --------------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list:
    """A MATLAB cell/struct array read with ``simplify_cells`` as a Python list."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.ravel())
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _trial_matrix(value: Any, where: str, n_channels: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or n_channels not in arr.shape:
        raise DatasetValidationError(f"{where}: expected (samples, {n_channels}) EEG, got shape {arr.shape}")
    if arr.shape[1] != n_channels:
        arr = arr.T
    if not np.isfinite(arr).all():
        raise DatasetValidationError(f"{where}: NaN/inf in the EEG")
    return arr


def load_dreamer(dataset_dir: Path, split: str, manifest: dict) -> EEGSet:
    """DREAMER ``DREAMER.mat``: (23 x 18 trials, 14 channels, crop_seconds x 128) at 128 Hz.

    Labels: ``valence``/``arousal``/``dominance`` in [-1, 1] = (score - 3) / 2; the raw 1-5
    ``*_score``; ``valence_binary``/``arousal_binary`` = score > 3 (1 = high, 0 = low: the common
    DREAMER threshold, so a rating of 3 counts as low); ``video`` = clip index 1-18. ``subject`` is
    1-23. With ``params.keep_baseline = true`` the last ``crop_seconds`` of each trial's baseline
    (neutral clip) recording go to ``meta["baseline"]`` (same shape as the data).
    """
    _check_split(manifest, split)
    params = _params(manifest)
    path = Path(dataset_dir) / params.get("mat_file", "DREAMER.mat")
    if not path.is_file():
        raise DatasetValidationError(f"{path}: file missing")
    try:
        mat = scipy.io.loadmat(path, simplify_cells=True)
    except NotImplementedError:
        raise DatasetValidationError(f"{path}: MATLAB v7.3 (HDF5) file; re-save it as v7 (-v7) for scipy") from None
    except Exception as exc:
        raise DatasetValidationError(f"{path}: not a readable MATLAB file ({exc})") from None
    if "DREAMER" not in mat or not isinstance(mat["DREAMER"], dict) or "Data" not in mat["DREAMER"]:
        raise DatasetValidationError(f"{path}: expected a struct 'DREAMER' with a field 'Data'")
    top = mat["DREAMER"]
    sfreq = float(params.get("sfreq", 128.0))
    stored_sf = top.get("EEG_SamplingRate")
    if stored_sf is not None and abs(float(stored_sf) - sfreq) > 1e-6:
        raise DatasetValidationError(f"{path}: EEG_SamplingRate is {stored_sf} Hz, expected {sfreq} Hz")
    ch_names = tuple(params.get("ch_names", EMOTIV_CHANNELS))
    stored_names = top.get("EEG_Electrodes")
    if stored_names is not None:
        stored = tuple(str(n).strip() for n in _as_list(stored_names))
        if stored != ch_names:
            raise DatasetValidationError(f"{path}: EEG_Electrodes {stored}, expected {ch_names}")
    crop = int(round(float(params.get("crop_seconds", 60.0)) * sfreq))
    keep_baseline = bool(params.get("keep_baseline", False))
    remove_dc = bool(params.get("remove_dc", True))
    subjects = _as_list(top["Data"])
    expect_subjects = params.get("n_subjects")
    if expect_subjects is not None and len(subjects) != int(expect_subjects):
        raise DatasetValidationError(f"{path}: {len(subjects)} subjects, the manifest expects {expect_subjects}")
    expect_trials = params.get("trials_per_subject")
    trials: list[np.ndarray] = []
    baselines: list[np.ndarray] = []
    scores: dict[str, list[float]] = {"valence": [], "arousal": [], "dominance": []}
    subject_ids: list[int] = []
    videos: list[int] = []
    for s, subj in enumerate(subjects, 1):
        where = f"{path}: Data{{{s}}}"
        if not isinstance(subj, dict) or "EEG" not in subj:
            raise DatasetValidationError(f"{where} has no EEG struct")
        stimuli = _as_list(subj["EEG"].get("stimuli"))
        baseline = _as_list(subj["EEG"].get("baseline"))
        if expect_trials is not None and len(stimuli) != int(expect_trials):
            raise DatasetValidationError(f"{where}: {len(stimuli)} stimuli, the manifest expects {expect_trials}")
        subject_scores = {}
        for key in scores:
            values = np.asarray(subj.get(f"Score{key.capitalize()}"), dtype=np.float64).ravel()
            if len(values) != len(stimuli):
                raise DatasetValidationError(f"{where}: Score{key.capitalize()} has {len(values)} values, stimuli {len(stimuli)}")
            if not ((values >= 1) & (values <= 5)).all():
                raise DatasetValidationError(f"{where}: Score{key.capitalize()} outside 1-5: {values}")
            subject_scores[key] = values
        for t, stim in enumerate(stimuli):
            trial_where = f"{where}.EEG.stimuli{{{t + 1}}}"
            x = _trial_matrix(stim, trial_where, len(ch_names))
            if len(x) < crop:
                raise DatasetValidationError(
                    f"{trial_where}: {len(x)} samples, shorter than crop_seconds ({crop} samples)"
                )
            x = x[-crop:].T
            if remove_dc:
                x = x - x.mean(axis=1, keepdims=True)
            trials.append(x.astype(np.float32))
            if keep_baseline:
                b = _trial_matrix(baseline[t], f"{where}.EEG.baseline{{{t + 1}}}", len(ch_names))[-crop:].T
                if b.shape[1] < crop:
                    raise DatasetValidationError(f"{where}.EEG.baseline{{{t + 1}}}: shorter than {crop} samples")
                baselines.append((b - b.mean(axis=1, keepdims=True) if remove_dc else b).astype(np.float32))
            for key in scores:
                scores[key].append(float(subject_scores[key][t]))
            subject_ids.append(s)
            videos.append(t + 1)
    labels: dict[str, np.ndarray] = {}
    for key, values in scores.items():
        raw = np.asarray(values, dtype=np.float32)
        labels[f"{key}_score"] = raw
        labels[key] = (raw - 3.0) / 2.0
    labels["valence_binary"] = (labels["valence_score"] > 3).astype(np.int64)
    labels["arousal_binary"] = (labels["arousal_score"] > 3).astype(np.int64)
    labels["video"] = np.asarray(videos, dtype=np.int64)
    meta: dict[str, Any] = {"unit": "uV", "crop_samples": crop, "remove_dc": remove_dc}
    if keep_baseline:
        meta["baseline"] = np.stack(baselines)
    crop_note = f"Each trial is the LAST {crop / sfreq:g} s of its clip (DREAMER clips last 65-393 s)"
    if remove_dc:
        crop_note += "; the per-trial channel mean (Emotiv DC offset) is removed"
    return EEGSet(
        data=np.stack(trials),
        kind="signal",
        ch_names=ch_names,
        name=manifest.get("name", "dreamer"),
        split=split,
        source=f"real: {path}",
        sfreq=sfreq,
        labels=labels,
        subject=np.asarray(subject_ids, dtype=np.int64),
        assumptions=(
            crop_note,
            "valence/arousal/dominance = (score - 3) / 2 in [-1, 1]; *_binary = score > 3",
        ),
        meta=meta,
    )


# --------------------------------------------------------------------------------------------------
# EAV
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _bandpass_sos(order: int, low: float, high: float, sfreq: float) -> np.ndarray:
    return butter(order, [low, high], btype="bandpass", fs=sfreq, output="sos")


def preprocess_eav(
    x: np.ndarray,
    sfreq_in: float = 500.0,
    sfreq_out: float = 100.0,
    band: tuple[float, float] = (0.5, 45.0),
    order: int = 5,
) -> np.ndarray:
    """EAV public-loader preprocessing along the last (time) axis; returns float32.

    1. ``scipy.signal.resample_poly`` from ``sfreq_in`` to ``sfreq_out`` (polyphase, anti-aliased);
    2. a causal Butterworth band-pass of ``order`` (5) over ``band`` (0.5-45 Hz) designed at
       ``sfreq_out`` as second-order sections and applied once forward with ``sosfilt``.

    For (trials, channels, samples) input the trials are first joined end to end per channel (the
    recording was continuous; this is what the public loader's Fortran-order reshape does), processed
    as one signal, and split back, so the filter state carries across trial boundaries.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim not in (1, 2, 3):
        raise ValueError(f"x must be (samples,), (channels, samples) or (trials, channels, samples); got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("x contains NaN or inf")
    if not (sfreq_in > 0 and sfreq_out > 0):
        raise ValueError(f"sfreq_in and sfreq_out must be positive; got {sfreq_in}, {sfreq_out}")
    lo, hi = band
    if not 0 < lo < hi < sfreq_out / 2:
        raise ValueError(f"band {band} must satisfy 0 < low < high < sfreq_out/2 = {sfreq_out / 2}")
    ratio = Fraction(sfreq_out / sfreq_in).limit_denominator(1000)
    n_trials = arr.shape[0] if arr.ndim == 3 else None
    if n_trials is not None:
        n_samples = arr.shape[2]
        if (n_samples * ratio.numerator) % ratio.denominator:
            raise ValueError(
                f"{n_samples} samples per trial do not resample to a whole number at {sfreq_out}/{sfreq_in}"
            )
        arr = np.concatenate(list(arr), axis=-1)  # (channels, trials * samples)
    y = resample_poly(arr, ratio.numerator, ratio.denominator, axis=-1)
    y = sosfilt(_bandpass_sos(int(order), float(lo), float(hi), float(sfreq_out)), y, axis=-1)
    if n_trials is not None:
        y = np.stack(np.split(y, n_trials, axis=-1))
    return y.astype(np.float32)


def segment_trials(x: np.ndarray, sfreq: float, seconds: float = 5.0) -> np.ndarray:
    """Cut (trials, channels, samples) into consecutive non-overlapping ``seconds`` segments.

    Returns (trials * n_segments, channels, seconds * sfreq), trial-major (trial 0 segments 0..k-1,
    then trial 1, ...), so per-trial labels expand with ``np.repeat(labels, n_segments)``. A tail
    shorter than one segment is dropped.
    """
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise ValueError(f"x must be (trials, channels, samples); got shape {arr.shape}")
    seg = int(round(seconds * sfreq))
    if seg <= 0 or abs(seg - seconds * sfreq) > 1e-6:
        raise ValueError(f"seconds * sfreq = {seconds * sfreq} must be a positive whole number of samples")
    n_seg = arr.shape[2] // seg
    if n_seg == 0:
        raise ValueError(f"trials of {arr.shape[2]} samples are shorter than one {seconds} s segment ({seg} samples)")
    t, c, _ = arr.shape
    cut = arr[:, :, : n_seg * seg].reshape(t, c, n_seg, seg)
    return np.ascontiguousarray(cut.transpose(0, 2, 1, 3).reshape(t * n_seg, c, seg))


def eav_label_columns(params: dict | None = None) -> list[tuple[int, int]]:
    """(emotion index, task index) of each one-hot label column of EAV's ``*_eeg_label.mat``.

    Default (ASSUMED from the public loader): 10 columns, emotion-major in the order Neutral,
    Sadness, Anger, Happiness, Calmness; within each emotion column 2k = speaking, 2k + 1 =
    listening (the loader keeps columns 1, 3, 5, 7, 9 as "the listening classes").
    Override with ``params.label_columns = [["neutral", "speaking"], ...]``.
    """
    params = params or {}
    spec = params.get("label_columns")
    if spec is None:
        return [(k // 2, 1 if k % 2 == 0 else 0) for k in range(10)]
    out = []
    for entry in spec:
        emotion, task = str(entry[0]).lower(), str(entry[1]).lower()
        if emotion not in EAV_CLASSES or task not in EAV_TASKS:
            raise ValueError(f"label_columns entry {entry!r}: emotion must be in {EAV_CLASSES}, task in {EAV_TASKS}")
        out.append((EAV_CLASSES.index(emotion), EAV_TASKS.index(task)))
    return out


def _load_mat_variable(path: Path, names: Sequence[str]) -> np.ndarray:
    if not path.is_file():
        raise DatasetValidationError(f"{path}: file missing")
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:
        import h5py

        with h5py.File(path, "r") as handle:
            for name in names:
                if name in handle:
                    return np.asarray(handle[name]).T  # MATLAB column-major
        raise DatasetValidationError(f"{path}: none of the variables {list(names)} found") from None
    except Exception as exc:
        raise DatasetValidationError(f"{path}: not a readable MATLAB file ({exc})") from None
    for name in names:
        if name in mat:
            return np.asarray(mat[name])
    found = [k for k in mat if not k.startswith("__")]
    raise DatasetValidationError(f"{path}: none of the variables {list(names)} found (has {found})")


def load_eav_subject(eeg_path: Path, label_path: Path, params: dict | None = None) -> dict[str, np.ndarray]:
    """One EAV subject: preprocessed 5 s segments and their labels (all 200 trials, both tasks).

    ``eeg_path`` holds ``seg1`` (or ``seg``): (samples = 20 s x 500 Hz, 30 channels, 200 trials);
    ``label_path`` holds ``label``: one-hot (10, 200) or (200, 10), columns as
    :func:`eav_label_columns`. Returns ``data`` (trials x 4, 30, 500) float32 at 100 Hz and int64
    ``emotion``, ``task``, ``trial`` (0-based trial within the subject), ``segment`` (0-3).
    """
    params = params or {}
    eeg_path, label_path = Path(eeg_path), Path(label_path)
    n_channels = int(params.get("n_channels", 30))
    sfreq_in = float(params.get("sfreq_in", 500.0))
    sfreq_out = float(params.get("sfreq_out", 100.0))
    trial_seconds = float(params.get("trial_seconds", 20.0))
    seg = _load_mat_variable(eeg_path, params.get("eeg_variables", ["seg1", "seg"]))
    if seg.ndim != 3:
        raise DatasetValidationError(f"{eeg_path}: EEG must be 3-D (samples, channels, trials); got shape {seg.shape}")
    if seg.shape[1] != n_channels:
        raise DatasetValidationError(
            f"{eeg_path}: {seg.shape[1]} channels on axis 1 (shape {seg.shape}), expected {n_channels}"
        )
    expect_samples = int(round(trial_seconds * sfreq_in))
    if seg.shape[0] != expect_samples:
        raise DatasetValidationError(
            f"{eeg_path}: {seg.shape[0]} samples per trial, expected {expect_samples} "
            f"({trial_seconds:g} s at {sfreq_in:g} Hz): wrong sampling rate or trial length"
        )
    bad = ~np.isfinite(seg)
    if bad.any():
        sample, ch, trial = np.argwhere(bad)[0]
        raise DatasetValidationError(f"{eeg_path}: NaN/inf at sample {sample}, channel {ch}, trial {trial}")
    n_trials = seg.shape[2]
    expect_trials = params.get("trials_per_subject")
    if expect_trials is not None and n_trials != int(expect_trials):
        raise DatasetValidationError(f"{eeg_path}: {n_trials} trials, the manifest expects {expect_trials}")
    columns = eav_label_columns(params)
    onehot = _load_mat_variable(label_path, ["label", "labels"])
    if onehot.shape == (n_trials, len(columns)) and onehot.shape != (len(columns), n_trials):
        onehot = onehot.T
    if onehot.shape != (len(columns), n_trials):
        raise DatasetValidationError(
            f"{label_path}: labels shape {onehot.shape}, expected ({len(columns)}, {n_trials}) one-hot"
        )
    if not (np.isin(onehot, (0, 1)).all() and (onehot.sum(axis=0) == 1).all()):
        col = int(np.flatnonzero(~(np.isin(onehot, (0, 1)).all(axis=0) & (onehot.sum(axis=0) == 1)))[0])
        raise DatasetValidationError(f"{label_path}: trial {col} is not one-hot: {onehot[:, col]}")
    column = onehot.argmax(axis=0)
    emotion = np.array([columns[c][0] for c in column], dtype=np.int64)
    task = np.array([columns[c][1] for c in column], dtype=np.int64)
    signals = np.ascontiguousarray(seg.transpose(2, 1, 0))  # (trials, channels, samples)
    del seg
    filtered = np.empty((n_trials, n_channels, int(expect_samples * sfreq_out / sfreq_in)), dtype=np.float32)
    band = tuple(params.get("band", (0.5, 45.0)))
    order = int(params.get("filter_order", 5))
    for c in range(n_channels):  # one channel at a time keeps memory to one channel's recording
        filtered[:, c] = preprocess_eav(signals[:, c : c + 1], sfreq_in, sfreq_out, band, order)[:, 0]
    segment_seconds = float(params.get("segment_seconds", 5.0))
    segments = segment_trials(filtered, sfreq_out, segment_seconds)
    n_seg = len(segments) // n_trials
    return {
        "data": segments,
        "emotion": np.repeat(emotion, n_seg),
        "task": np.repeat(task, n_seg),
        "trial": np.repeat(np.arange(n_trials, dtype=np.int64), n_seg),
        "segment": np.tile(np.arange(n_seg, dtype=np.int64), n_trials),
    }


def eav_subject_files(dataset_dir: Path) -> list[tuple[int, Path, Path]]:
    """(subject number, EEG file, label file) for ``subject{NN}/EEG/subject{NN}_eeg.mat`` layouts."""
    found = []
    for eeg_path in sorted(Path(dataset_dir).glob("subject*/EEG/subject*_eeg.mat")):
        match = re.fullmatch(r"subject(\d+)_eeg\.mat", eeg_path.name)
        if match is None:
            continue
        label_path = eeg_path.with_name(f"subject{match.group(1)}_eeg_label.mat")
        found.append((int(match.group(1)), eeg_path, label_path))
    return sorted(found)


def load_eav(dataset_dir: Path, split: str, manifest: dict) -> EEGSet:
    """EAV EEG as 5 s segments at 100 Hz: (segments, 30, 500), split "all", "listening" or "speaking".

    Layout (the dataset's Zenodo release as read by its public loader):
    ``<eav>/subject01/EEG/subject01_eeg.mat`` (``seg1``: 10,000 samples x 30 channels x 200 trials)
    and ``subject01_eeg_label.mat`` (``label``: 10 x 200 one-hot). Labels: ``emotion`` (0 Neutral,
    1 Sadness, 2 Anger, 3 Happiness, 4 Calmness), ``task`` (0 listening, 1 speaking), ``trial``,
    ``segment``, and circumplex ``valence``/``arousal`` of the emotion. ``params.subjects`` (list
    of subject numbers) restricts loading; all 42 subjects with both tasks need ~2 GB as float32.
    """
    _check_split(manifest, split)
    params = _params(manifest)
    files = eav_subject_files(Path(dataset_dir))
    wanted = params.get("subjects")
    if wanted is not None:
        wanted = {int(s) for s in wanted}
        files = [f for f in files if f[0] in wanted]
    if not files:
        raise DatasetValidationError(
            f"{dataset_dir}: no subject folders subjectNN/EEG/subjectNN_eeg.mat"
            + (f" for subjects {sorted(wanted)}" if wanted else "")
        )
    ch_names = tuple(params.get("ch_names", EAV_CHANNELS))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("data", "emotion", "task", "trial", "segment", "subject")}
    for number, eeg_path, label_path in files:
        subject = load_eav_subject(eeg_path, label_path, {**params, "n_channels": len(ch_names)})
        keep = np.ones(len(subject["task"]), dtype=bool)
        if split in EAV_TASKS:
            keep = subject["task"] == EAV_TASKS.index(split)
        for key in ("data", "emotion", "task", "trial", "segment"):
            parts[key].append(subject[key][keep])
        parts["subject"].append(np.full(int(keep.sum()), number, dtype=np.int64))
    emotion = np.concatenate(parts["emotion"])
    valence, arousal = _va_from_category([EAV_CLASSES[e] for e in emotion])
    sfreq_out = float(params.get("sfreq_out", 100.0))
    return EEGSet(
        data=np.concatenate(parts["data"]),
        kind="signal",
        ch_names=ch_names,
        name=manifest.get("name", "eav"),
        split=split,
        source=f"real: {dataset_dir}",
        sfreq=sfreq_out,
        labels={
            "emotion": emotion,
            "task": np.concatenate(parts["task"]),
            "trial": np.concatenate(parts["trial"]),
            "segment": np.concatenate(parts["segment"]),
            "valence": valence,
            "arousal": arousal,
        },
        subject=np.concatenate(parts["subject"]),
        assumptions=(
            "Channel order assumed (the .mat files carry no names): " + ", ".join(ch_names),
            "Label columns assumed emotion-major (Neutral, Sadness, Anger, Happiness, Calmness), even = "
            "speaking, odd = listening, after the public loader's 'listening classes' [1, 3, 5, 7, 9]",
            "valence/arousal are the circumplex points of the emotion categories (taxonomy.CIRCUMPLEX_VA)",
        ),
        meta={
            "unit": "uV",
            "class_names": EAV_CLASSES,
            "task_names": EAV_TASKS,
            "preprocessing": (
                f"resample_poly {params.get('sfreq_in', 500.0)} -> {sfreq_out} Hz; causal Butterworth "
                f"order {params.get('filter_order', 5)} band-pass {tuple(params.get('band', (0.5, 45.0)))} Hz "
                f"(sosfilt); {params.get('segment_seconds', 5.0)} s segments"
            ),
        },
    )
