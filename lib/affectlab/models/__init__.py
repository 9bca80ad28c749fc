"""The book's networks, one module per paper.

- :mod:`~affectlab.models.resnet_student`, :mod:`~affectlab.models.va_teacher`: NeuroGaze-Distill
  (chapter 01) FER student and EEG-topomap V/A teacher.
- :mod:`~affectlab.models.sharma_cnn`, :mod:`~affectlab.models.minixception`: the DCNN-hierarchy
  networks (chapter 02) and the real FER2013-trained mini-Xception, loaded from Keras HDF5 with h5py.
- :mod:`~affectlab.models.eeg2face`, :mod:`~affectlab.models.eeg_baselines`: EEG2Face encoders,
  heads and the Table 4.1 baselines (chapter 03).
- :mod:`~affectlab.models.poster`, :mod:`~affectlab.models.ir50`,
  :mod:`~affectlab.models.mobilefacenet`: POSTER++ and POSTER-Var (chapter 04).
"""

from affectlab.models.eeg2face import EEG2Face, EEG2FaceHeads, EEGContentRegressor, EEGEmotionEncoder
from affectlab.models.eeg_baselines import build_content_encoder
from affectlab.models.minixception import load_keras_hdf5, load_minixception, prepare_minixception_input
from affectlab.models.poster import PosterConfig, PosterModel, VICHead, ablation_configs
from affectlab.models.resnet_student import FERStudent
from affectlab.models.sharma_cnn import SharmaCNN, build_sharma_cnn, build_sharma_variant
from affectlab.models.va_teacher import TopomapVATeacher

__all__ = [
    "EEG2Face",
    "EEG2FaceHeads",
    "EEGContentRegressor",
    "EEGEmotionEncoder",
    "FERStudent",
    "PosterConfig",
    "PosterModel",
    "SharmaCNN",
    "TopomapVATeacher",
    "VICHead",
    "ablation_configs",
    "build_content_encoder",
    "build_sharma_cnn",
    "build_sharma_variant",
    "load_keras_hdf5",
    "load_minixception",
    "prepare_minixception_input",
]
