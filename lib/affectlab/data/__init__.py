"""Datasets: containers, taxonomy, manifests, loaders and the embedded default.

``load_or_embedded(name, root, split)`` is what chapters call: the real copy when the data root
holds it, else the generated stand-in. ``load(name, root=None, split=None)`` returns a :class:`FaceSet` or :class:`EEGSet`: the user's copy
under the data root when one is given (argument or ``AFFECTLAB_DATA``), else the embedded generated
stand-in. ``available(name, root)`` says whether the data root holds the dataset; ``asset_path``
locates validated non-dataset assets (face models, pretrained weights).
"""

from affectlab.data.manifest import DatasetNotFoundError, DatasetValidationError, ManifestError
from affectlab.data.registry import (
    UnknownDatasetError,
    asset_path,
    available,
    check,
    get_manifest,
    known_names,
    load,
    load_or_embedded,
)
from affectlab.data.sets import EEGSet, FaceSet
from affectlab.data.taxonomy import (
    CIRCUMPLEX_SOURCE,
    CIRCUMPLEX_VA,
    DATASET_TO_FERPLUS,
    FER2013_CLASSES,
    FERPLUS_CLASSES,
    category_va,
    map_to_ferplus,
)

__all__ = [
    "CIRCUMPLEX_SOURCE",
    "CIRCUMPLEX_VA",
    "DATASET_TO_FERPLUS",
    "DatasetNotFoundError",
    "DatasetValidationError",
    "EEGSet",
    "FER2013_CLASSES",
    "FERPLUS_CLASSES",
    "FaceSet",
    "ManifestError",
    "UnknownDatasetError",
    "asset_path",
    "available",
    "category_va",
    "check",
    "get_manifest",
    "known_names",
    "load",
    "load_or_embedded",
    "map_to_ferplus",
]
