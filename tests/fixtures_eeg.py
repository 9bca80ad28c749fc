"""Small EEG fixtures written in the real file formats (DEAP/MAHNOB feature text files, DREAMER.mat,
EAV subject .mat files, EEGLAB .set + .fdt). Values are random; shapes and structure are real."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.io

from affectlab.data.eeg import EMOTIV_CHANNELS
from affectlab.data.manifest import read_manifest


def write_feature_folder(
    folder: Path, n_rows: int = 12, n_subjects: int = 3, categories: bool = False, seed: int = 0
) -> dict[str, np.ndarray]:
    """DEAP/MAHNOB-style feature folder; returns what was written (features (n, 160), codes, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = rng.uniform(1.5, 10.5, size=(n_rows, 160))
    subject = np.repeat(np.arange(1, n_subjects + 1), int(np.ceil(n_rows / n_subjects)))[:n_rows]
    video = np.tile(np.arange(1, n_rows + 1), 1)
    va_codes = rng.integers(1, 3, size=(n_rows, 2))
    np.savetxt(folder / "EEG_feature.txt", features, fmt="%.14f", delimiter="\t")
    np.savetxt(folder / "subject_video.txt", np.stack([subject, video], 1), fmt="%d", delimiter="\t")
    np.savetxt(folder / "valence_arousal_label.txt", va_codes, fmt="%d", delimiter="\t")
    out = {"features": features, "subject": subject, "video": video, "va_codes": va_codes}
    if categories:
        codes = np.array([0, 1, 2, 3, 4, 5, 6, 11, 12])[np.arange(n_rows) % 9]
        np.savetxt(folder / "EEG_emotion_category.txt", codes, fmt="%d")
        out["categories"] = codes
    return out


def feature_manifest(name: str, rows: int) -> dict:
    """The real manifest of ``name`` (deap / mahnob_hci) with the fixture's row count."""
    manifest = read_manifest(name)
    manifest["params"] = {**manifest["params"], "rows": rows}
    return manifest


def write_dreamer_mat(
    path: Path,
    n_subjects: int = 2,
    clip_seconds: Sequence[float] = (6.5, 7.0, 8.0),
    sfreq: float = 128.0,
    baseline_seconds: float = 6.1,
    seed: int = 0,
    ch_names: Sequence[str] = EMOTIV_CHANNELS,
) -> dict[str, np.ndarray]:
    """``DREAMER.mat`` with DREAMER's nested structure (struct DREAMER, cell Data{s}, EEG.stimuli{t})."""
    rng = np.random.default_rng(seed)
    n_trials = len(clip_seconds)
    data_cells = np.empty((1, n_subjects), dtype=object)
    scores = {k: rng.integers(1, 6, size=(n_subjects, n_trials)).astype(float) for k in ("Valence", "Arousal", "Dominance")}
    stimuli_all = []
    for s in range(n_subjects):
        stimuli = np.empty((n_trials, 1), dtype=object)
        baseline = np.empty((n_trials, 1), dtype=object)
        for t, sec in enumerate(clip_seconds):
            stimuli[t, 0] = 4200.0 + rng.normal(0, 20, size=(int(sec * sfreq), len(ch_names)))
            baseline[t, 0] = 4200.0 + rng.normal(0, 20, size=(int(baseline_seconds * sfreq), len(ch_names)))
            stimuli_all.append(stimuli[t, 0])
        data_cells[0, s] = {
            "Age": 25.0,
            "Gender": "male",
            "EEG": {"baseline": baseline, "stimuli": stimuli},
            "ECG": {"baseline": np.empty((n_trials, 1), dtype=object), "stimuli": np.empty((n_trials, 1), dtype=object)},
            "ScoreValence": scores["Valence"][s][:, None],
            "ScoreArousal": scores["Arousal"][s][:, None],
            "ScoreDominance": scores["Dominance"][s][:, None],
        }
        for cell in data_cells[0, s]["ECG"].values():
            for t in range(n_trials):
                cell[t, 0] = np.zeros((2, 2))
    electrodes = np.empty((len(ch_names), 1), dtype=object)
    for i, name in enumerate(ch_names):
        electrodes[i, 0] = name
    mat = {
        "DREAMER": {
            "Data": data_cells,
            "EEG_SamplingRate": sfreq,
            "ECG_SamplingRate": 256.0,
            "EEG_Electrodes": electrodes,
            "noOfSubjects": float(n_subjects),
            "noOfVideoSequences": float(n_trials),
            "Disclaimer": "fixture",
        }
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, mat)
    return {"stimuli": stimuli_all, **{k.lower(): v for k, v in scores.items()}}


def dreamer_manifest(n_subjects: int = 2, trials: int = 3, crop_seconds: float = 6.0) -> dict:
    """The real DREAMER manifest with the fixture's sizes (short clips: crop 6 s instead of 60 s)."""
    manifest = read_manifest("dreamer")
    manifest["params"] = {
        **manifest["params"],
        "n_subjects": n_subjects,
        "trials_per_subject": trials,
        "crop_seconds": crop_seconds,
    }
    return manifest


def write_eav_subject(
    root: Path,
    subject: int = 1,
    n_trials: int = 10,
    n_channels: int = 30,
    sfreq: float = 500.0,
    seconds: float = 20.0,
    seed: int = 0,
    columns: Sequence[int] | None = None,
) -> tuple[Path, Path, np.ndarray]:
    """``subjectNN/EEG/subjectNN_eeg.mat`` (seg1: samples x channels x trials) and ``..._eeg_label.mat``
    (label: 10 x trials one-hot). Returns the two paths and the one-hot column of each trial."""
    rng = np.random.default_rng(seed + subject)
    folder = root / f"subject{subject:02d}" / "EEG"
    folder.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sfreq))
    seg = rng.normal(0, 10, size=(n, n_channels, n_trials)).astype(np.float32)
    cols = np.asarray(columns if columns is not None else np.arange(n_trials) % 10)
    label = np.zeros((10, n_trials))
    label[cols, np.arange(n_trials)] = 1
    eeg_path = folder / f"subject{subject:02d}_eeg.mat"
    label_path = folder / f"subject{subject:02d}_eeg_label.mat"
    scipy.io.savemat(eeg_path, {"seg1": seg})
    scipy.io.savemat(label_path, {"label": label})
    return eeg_path, label_path, cols


def eav_manifest(n_trials: int = 10) -> dict:
    manifest = read_manifest("eav")
    manifest["params"] = {**manifest["params"], "trials_per_subject": n_trials}
    return manifest


def write_eeglab_set(
    folder: Path,
    ch_names: Sequence[str] = ("Fz", "Cz", "Pz", "Oz", "EOG1"),
    n_samples: int = 256,
    sfreq: float = 128.0,
    data_uv: np.ndarray | None = None,
    stem: str = "eeglab_data",
    write_fdt: bool = True,
) -> tuple[Path, np.ndarray]:
    """An EEGLAB ``.set`` (MATLAB struct EEG) whose float32 samples live in ``<stem>.fdt``
    (channels fastest), as EEGLAB writes them. Returns the .set path and the data in uV."""
    folder.mkdir(parents=True, exist_ok=True)
    if data_uv is None:
        data_uv = np.random.default_rng(0).normal(0, 20, size=(len(ch_names), n_samples))
    data_uv = np.asarray(data_uv, dtype=np.float32)
    if write_fdt:
        data_uv.T.tofile(folder / f"{stem}.fdt")
    chanlocs = np.array([(name,) for name in ch_names], dtype=[("labels", "O")])
    eeg = {
        "setname": "fixture",
        "nbchan": float(len(ch_names)),
        "trials": 1.0,
        "pnts": float(data_uv.shape[1]),
        "srate": float(sfreq),
        "xmin": 0.0,
        "xmax": (data_uv.shape[1] - 1) / sfreq,
        "data": f"{stem}.fdt",
        "chanlocs": chanlocs,
        "event": np.zeros((0,)),
        "epoch": np.zeros((0,)),
        "icawinv": np.zeros((0,)),
        "ref": "common",
    }
    set_path = folder / f"{stem}.set"
    scipy.io.savemat(set_path, {"EEG": eeg}, appendmat=False)
    return set_path, data_uv


def eeglab_manifest(ch_names: Sequence[str], n_samples: int, sfreq: float = 128.0) -> dict:
    manifest = read_manifest("eeglab_sample")
    manifest["params"] = {
        **manifest["params"],
        "n_channels": len(ch_names),
        "n_samples": n_samples,
        "sfreq": sfreq,
        "ch_names": list(ch_names),
    }
    return manifest

