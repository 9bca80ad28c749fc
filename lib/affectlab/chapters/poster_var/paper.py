"""The paper's own numbers (paper 003): Table 2 (published methods, quoted), Table 3 (ablation
and inference time) and Table 4 (per-class RAF-DB scores); none of them was measured here."""

from __future__ import annotations

PAPER_TABLE_3: dict[str, dict[str, float]] = {
    "full": {"RAF-DB": 92.76, "AffectNet (7 cls)": 67.91, "AffectNet (8 cls)": 64.27, "FER+": 91.89, "Inf. Time (ms)": 1.502},
    "w/o layer emb.": {"RAF-DB": 92.66, "AffectNet (7 cls)": 67.85, "AffectNet (8 cls)": 64.24, "FER+": 91.85, "Inf. Time (ms)": 1.502},
    "w/o VI": {"RAF-DB": 92.50, "AffectNet (7 cls)": 67.66, "AffectNet (8 cls)": 64.02, "FER+": 91.69, "Inf. Time (ms)": 1.492},
    "baseline": {"RAF-DB": 92.21, "AffectNet (7 cls)": 67.49, "AffectNet (8 cls)": 63.77, "FER+": 91.62, "Inf. Time (ms)": 1.491},
}
"""Table 3 of the paper: test accuracy (%) and inference time (ms, mean of 1000 runs, RTX 3090)."""

PAPER_TABLE_4: dict[str, dict[str, float]] = {
    "surprise": {"Training samples": 1290, "Testing samples": 329, "Recall": 91.79, "Precision": 92.35},
    "anger": {"Training samples": 705, "Testing samples": 162, "Recall": 86.42, "Precision": 90.91},
    "sadness": {"Training samples": 1982, "Testing samples": 478, "Recall": 92.68, "Precision": 89.68},
    "neutral": {"Training samples": 2524, "Testing samples": 680, "Recall": 93.53, "Precision": 90.47},
    "fear": {"Training samples": 281, "Testing samples": 74, "Recall": 70.27, "Precision": 85.25},
    "happiness": {"Training samples": 4772, "Testing samples": 1185, "Recall": 96.79, "Precision": 97.20},
    "disgust": {"Training samples": 717, "Testing samples": 160, "Recall": 78.75, "Precision": 84.56},
}
"""Table 4 of the paper: POSTER-Var on RAF-DB per class (recall / precision in %)."""

PAPER_TABLE_2: list[tuple[str, str, dict[str, float]]] = [
    ("PSR", "CVPR 2020", {"RAF-DB": 88.98, "AffectNet (7 cls)": 63.77, "AffectNet (8 cls)": 60.68, "FER+": 89.75}),
    ("EfficientFace", "AAAI 2021", {"RAF-DB": 88.36, "AffectNet (7 cls)": 63.70, "AffectNet (8 cls)": 60.23}),
    ("Meta-Face2Exp", "CVPR 2022", {"RAF-DB": 88.54, "AffectNet (7 cls)": 64.23}),
    ("POSTER", "ICCV 2023", {"RAF-DB": 92.05, "AffectNet (7 cls)": 67.31, "AffectNet (8 cls)": 63.34, "FER+": 91.62}),
    ("MFER", "T-AFFC 2024", {"RAF-DB": 92.08, "AffectNet (7 cls)": 67.06, "AffectNet (8 cls)": 63.15, "FER+": 91.09}),
    ("POSTER++", "PR 2025", {"RAF-DB": 92.21, "AffectNet (7 cls)": 67.49, "AffectNet (8 cls)": 63.77}),
    ("DCS", "AAAI 2025", {"RAF-DB": 92.57, "AffectNet (7 cls)": 67.66, "AffectNet (8 cls)": 64.40, "FER+": 91.41}),
    ("MTSD-CF", "ESWA 2025", {"RAF-DB": 92.63, "AffectNet (7 cls)": 66.26}),
    ("POSTER-Var", "2026", {"RAF-DB": 92.76, "AffectNet (7 cls)": 67.91, "AffectNet (8 cls)": 64.27, "FER+": 91.89}),
]
"""Table 2 of the paper: test accuracy (%) of published methods as the paper quotes them ("-" = not reported)."""

PAPER_COLUMN = {"ferplus": "FER+", "rafdb": "RAF-DB", "affectnet": "AffectNet (8 cls)", "affectnet7": "AffectNet (7 cls)"}


def paper_column(dataset: str, num_classes: int) -> str | None:
    """The paper's Table 3 column for ``dataset`` (AffectNet: 7 or 8 classes by ``num_classes``)."""
    if dataset in ("affectnet", "affectnet7"):
        return f"AffectNet ({7 if num_classes == 7 else 8} cls)"
    return PAPER_COLUMN.get(dataset)


