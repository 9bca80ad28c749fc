"""Emotion label taxonomies and their explicit maps onto the 8 FERPlus classes.

Every face loader reports labels as indices into :data:`FERPLUS_CLASSES` (the order FERPlus publishes:
Barsoum et al., ICMI 2016, ``fer2013new.csv`` columns), except ``fer2013`` which keeps its original 7
labels and gives the FERPlus mapping beside them. Each dataset's own labels are listed here with the
codes its files use, so no mapping is implicit.

Circumplex coordinates (:data:`CIRCUMPLEX_VA`): one (valence, arousal) point in [-1, 1] per category,
used wherever a category must become a continuous V/A target (generated faces, EEG categories, the
prototype bank of NeuroGaze-Distill Sec. 3). Source: the pleasure and arousal scale scores of emotion
terms in

    Russell, J. A., & Mehrabian, A. (1977). Evidence for a three-factor theory of emotions.
    Journal of Research in Personality, 11(3), 273-294. doi:10.1016/0092-6566(77)90037-X

whose scales already run from -1 to +1 (pleasure = valence). Values used (term in the source ->
category): happy (+0.81, +0.51) -> happiness; surprised (+0.40, +0.67) -> surprise;
sad (-0.63, -0.27) -> sadness; angry (-0.51, +0.59) -> anger; disgust (-0.60, +0.35) -> disgust;
fearful (-0.64, +0.60) -> fear.

Three categories have no term in that table, so their points are our documented choices, not the
source's numbers:

- neutral: (0, 0), the neutral midpoint of both bipolar scales by construction.
- contempt: (-0.555, +0.47), the mean of the anger and disgust points (contempt, anger and disgust
  form Izard's (1977) "hostility triad"; contempt is the least aroused of the three only in some
  accounts, so we do not guess further).
- calmness (EAV's fifth class): (+0.42, -0.42), radius 0.6 at -45 degrees, i.e. the middle of the
  pleasant-deactivated quadrant where Russell (1980, "A circumplex model of affect", J. Pers. Soc.
  Psychol. 39:1161-1178) places calm and relaxed.

MAHNOB-HCI's amusement and anxiety take the points of the FERPlus class they map to (happiness and
fear), see :data:`MAHNOB_TO_FERPLUS`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

FERPLUS_CLASSES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
"""The 8 FERPlus emotion classes in published order (index = label)."""

FERPLUS_VOTE_COLUMNS: tuple[str, ...] = FERPLUS_CLASSES + ("unknown", "NF")
"""The 10 vote columns of FERPlus ``label.csv`` / ``fer2013new.csv`` (NF = not a face)."""

FERPLUS_INDEX: dict[str, int] = {name: i for i, name in enumerate(FERPLUS_CLASSES)}
UNMAPPED = -1
"""Label value for "no FERPlus class" / unknown."""

# --- FER2013 (Goodfellow et al. 2013; Kaggle fer2013.csv column ``emotion``) -----------------------
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_TO_FERPLUS: dict[int, str] = {
    0: "anger",
    1: "disgust",
    2: "fear",
    3: "happiness",
    4: "sadness",
    5: "surprise",
    6: "neutral",
}

# --- CK+ (Lucey et al. 2010), CK+48 folder names ---------------------------------------------------
CKPLUS_CLASSES: tuple[str, ...] = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
CKPLUS_TO_FERPLUS: dict[str, str] = {
    "anger": "anger",
    "contempt": "contempt",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "sadness": "sadness",
    "surprise": "surprise",
}

# --- RAF-DB basic (Li & Deng 2017), EmoLabel/list_patition_label.txt codes 1..7 -------------------
RAFDB_CLASSES: dict[int, str] = {
    1: "surprise",
    2: "fear",
    3: "disgust",
    4: "happiness",
    5: "sadness",
    6: "anger",
    7: "neutral",
}
RAFDB_TO_FERPLUS: dict[int, str] = dict(RAFDB_CLASSES)

# --- AffectNet (Mollahosseini et al. 2019), column ``expression`` 0..7 (8 None, 9 Uncertain,
# 10 No-Face have no FERPlus class) ---------------------------------------------------------------
AFFECTNET_CLASSES: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
)
AFFECTNET_TO_FERPLUS: dict[int, str] = {
    0: "neutral",
    1: "happiness",
    2: "sadness",
    3: "surprise",
    4: "fear",
    5: "disgust",
    6: "anger",
    7: "contempt",
}
AFFECTNET_NON_EMOTION: dict[int, str] = {8: "none", 9: "uncertain", 10: "no-face"}

# --- KDEF (Lundqvist, Flykt & Ohman 1998), file-name expression codes --------------------------------
KDEF_CLASSES: dict[str, str] = {
    "AF": "afraid",
    "AN": "angry",
    "DI": "disgusted",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprised",
}
KDEF_TO_FERPLUS: dict[str, str] = {
    "AF": "fear",
    "AN": "anger",
    "DI": "disgust",
    "HA": "happiness",
    "NE": "neutral",
    "SA": "sadness",
    "SU": "surprise",
}
KDEF_POSES: dict[str, str] = {
    "FL": "full left profile",
    "HL": "half left profile",
    "S": "straight (frontal)",
    "HR": "half right profile",
    "FR": "full right profile",
}

# --- EAV (Lee et al. 2024): 0 Neutral, 1 Sadness, 2 Anger, 3 Happiness, 4 Calmness ---------------
EAV_CLASSES: tuple[str, ...] = ("neutral", "sadness", "anger", "happiness", "calmness")
EAV_TO_FERPLUS: dict[int, str | None] = {
    0: "neutral",
    1: "sadness",
    2: "anger",
    3: "happiness",
    4: None,
}
"""Calmness has no FERPlus class: it maps to :data:`UNMAPPED` (-1) for 8-class use (a FERPlus-trained
classifier must not be scored on it) and keeps its own circumplex point ``CIRCUMPLEX_VA["calmness"]``
for valence/arousal use."""

# --- MAHNOB-HCI (Soleymani et al. 2012), EEG_emotion_category.txt codes ---------------------------
MAHNOB_CATEGORIES: dict[int, str] = {
    0: "neutral",
    1: "anger",
    2: "disgust",
    3: "fear",
    4: "joy",
    5: "sadness",
    6: "surprise",
    11: "amusement",
    12: "anxiety",
}
MAHNOB_TO_FERPLUS: dict[int, str] = {
    0: "neutral",
    1: "anger",
    2: "disgust",
    3: "fear",
    4: "happiness",
    5: "sadness",
    6: "surprise",
    11: "happiness",  # amusement: a positive, aroused state of the enjoyment family (Ekman 1992)
    12: "fear",  # anxiety: the anticipatory member of the fear family (Ekman 1992)
}

# --- Circumplex valence/arousal (see module docstring for the source) -----------------------------
CIRCUMPLEX_VA: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happiness": (0.81, 0.51),
    "surprise": (0.40, 0.67),
    "sadness": (-0.63, -0.27),
    "anger": (-0.51, 0.59),
    "disgust": (-0.60, 0.35),
    "fear": (-0.64, 0.60),
    "contempt": (-0.555, 0.47),
    "calmness": (0.42, -0.42),
}
CIRCUMPLEX_SOURCE = (
    "Russell & Mehrabian (1977), J. Res. Pers. 11:273-294, pleasure/arousal scores of the terms "
    "happy, surprised, sad, angry, disgust, fearful; neutral = origin; contempt = mean of anger and "
    "disgust; calmness = (0.42, -0.42) in Russell's (1980) calm/relaxed quadrant (project choices)"
)

DATASET_TO_FERPLUS: dict[str, Mapping] = {
    "fer2013": FER2013_TO_FERPLUS,
    "ckplus": CKPLUS_TO_FERPLUS,
    "rafdb": RAFDB_TO_FERPLUS,
    "affectnet": AFFECTNET_TO_FERPLUS,
    "kdef": KDEF_TO_FERPLUS,
    "eav": EAV_TO_FERPLUS,
    "mahnob_hci": MAHNOB_TO_FERPLUS,
}
"""Dataset label code -> FERPlus class name (None = no FERPlus class), per registry name."""


def ferplus_index(name: str) -> int:
    """Index of a FERPlus class name; a clear error for anything else."""
    try:
        return FERPLUS_INDEX[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a FERPlus class; expected one of {FERPLUS_CLASSES}") from None


def map_to_ferplus(codes: Sequence | np.ndarray | torch.Tensor, mapping: Mapping) -> torch.Tensor:
    """Map dataset label codes to FERPlus indices (int64); codes mapped to None give -1.

    A code missing from ``mapping`` is an error naming the code and the known codes.
    """
    values = codes.tolist() if isinstance(codes, (np.ndarray, torch.Tensor)) else list(codes)
    out = []
    for code in values:
        if code not in mapping:
            raise ValueError(f"label code {code!r} has no entry in the FERPlus map; known codes {sorted(mapping, key=str)}")
        target = mapping[code]
        out.append(UNMAPPED if target is None else ferplus_index(target))
    return torch.tensor(out, dtype=torch.long)


def category_va(labels: torch.Tensor | np.ndarray, class_names: Sequence[str] = FERPLUS_CLASSES) -> torch.Tensor:
    """Circumplex (valence, arousal) float32 (N, 2) for category indices; -1 rows are NaN."""
    idx = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    table = torch.tensor([CIRCUMPLEX_VA[name] for name in class_names], dtype=torch.float32)
    out = torch.full((len(idx), 2), float("nan"))
    known = idx >= 0
    if bool((idx[known] >= len(class_names)).any()):
        raise ValueError(f"labels contain an index >= {len(class_names)} (classes {tuple(class_names)})")
    out[known] = table[idx[known]]
    return out
