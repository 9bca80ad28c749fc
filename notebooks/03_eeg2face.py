# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: affectlab (.venv)
#     language: python
#     name: affectlab
# ---

# %% [markdown]
# # EEG2Face: 3D facial expressions decoded from EEG
#
# This chapter reproduces *EEG2Face: EEG-driven Emotional 3D Face Reconstruction* (Z. Kabidenova,
# MSc thesis, Nazarbayev University, 2025). The thesis decodes 30-channel EEG into the expression
# and jaw parameters of a 3D face model and renders them as a mesh.
#
# ## What the thesis claims
#
# - **Hypothesis** (Ch. 1, Sec. 3.0.3): the parts of the EEG that BCI pipelines discard as noise,
#   above all facial EMG, carry the face's movements, so EEG alone can drive a 3D face.
# - **Model** (Sec. 3.0.4-3.0.7, Fig. 3-2): a content regressor `E_r` (1x30 temporal convolution,
#   stride 5, a spatial convolution to d = 128 tokens, 2 transformer layers, attention pooling)
#   aligned with the vision latent `z_v` (FLAME: 50 expression + 3 jaw parameters read from the video
#   by EMOCA) by a one-sided InfoNCE; an emotion encoder `E_e` (log-power transformer, cross-entropy
#   over EAV's five emotions); then, with both frozen, heads `f` and `g` trained on
#   `0.7 MSE(z_v) + 0.3 L_vertex` (Eq. 3.1) with the emotion code dropped for half the samples.
# - **Inference** (Sec. 3.0.9): content-only `f(z_r)`, emotion-enhanced `f(z_r + g(z_bar))`,
#   emotion modulation with a chosen code and interpolation between emotions (Fig. 4-2).
# - **Table 4.1**: `E_r` reconstructs lips (LVE), mouth corners (MCE) and the emotional upper face
#   (EVE) better than EEGNet, ShallowConvNet, TCT and an EEG transformer.
#
# The thesis's data cannot be used here: the EAV videos are licence-gated and EMOCA / FLAME cannot be
# downloaded. We therefore build an **EAV-like semi-synthetic set** in which the EMG-to-face coupling
# is *planted*: real EEG background, generated EMG and emotion rhythms, and faces rendered from the same
# blendshape trajectories that drive the EMG. Because the ground truth is known, the chapter can ask
# what the thesis could not: how much of the face EEG2Face recovers when the coupling is there, and
# what it produces when there is none.

# %% tags=["parameters"]
PROFILE = "quick"
DATA_ROOT = ""
SEED = 0
DEVICE = "auto"

# %%
import time

import pandas as pd

from affectlab import plots
from affectlab.config import resolve_run
from affectlab.pipelines import eeg2face

run = resolve_run(PROFILE, DATA_ROOT or None, SEED, DEVICE)
cfg = eeg2face.chapter_config(run.profile)
pd.set_option("display.max_colwidth", 60)
started = time.perf_counter()
print(run.to_dict())
print(cfg)

# %% [markdown]
# ## Data: an EAV-like paired set with a planted EMG-to-face coupling
#
# One call builds the set (`eeg2face.build_chapter_data`). Per subject, emotion and trial (EAV's
# speaking condition, five emotions):
#
# - **Real**: the EEG background, cut from the 30 EEG channels of the EEGLAB tutorial recording in
#   the data root (resampled 128 -> 100 Hz and band-passed 0.5-45 Hz as the EAV loader does).
#   Training trials take their background from the first 75 % of the recording, test trials from the
#   last 25 %. Without a data root the embedded default's *generated* recording is used instead.
# - **Generated**: one smooth blendshape trajectory per trial (the emotion's FACS recipe, talking jaw,
#   blinks), the EMG it produces on temporal and frontal channels, mixed with an unrelated EMG
#   surrogate as `(coupling x face + surrogate) / (coupling + 1)`, and the emotion's band-power
#   rhythms (frontal alpha asymmetry for valence, beta/gamma for arousal).
# - **Exact targets**: `z_v` = the 50 principal components of the 53 ICT-FaceKit blendshapes
#   (fitted on the training frames) + the 3 jaw parameters, the stand-in for FLAME's 53 codes. No
#   EMOCA pseudo-ground-truth is needed; frames are rendered only for the figures.
#
# Each sample is one face frame (10 fps) with the EEG window centred on it; trials are split 6:2 per
# subject and emotion (subject-dependent, Sec. 3.0.1).

# %%
background = eeg2face.background_eeg(run)
data = eeg2face.build_chapter_data(cfg, run, background)
print(data.source)
print(f"{len(data)} samples of {data.eeg.shape[1]} channels x {data.eeg.shape[2]} EEG samples "
      f"({cfg.window_seconds} s at 100 Hz); z_v variance outside the 50 components: {data.latent.dropped_variance:.2e}")
data.counts()

# %% [markdown]
# One test trial: the face trajectory, the EMG drive it produces and the EEG that results.

# %%
eeg2face.trial_figure(data)

# %% [markdown]
# ## Train or load: both stages for every encoder of Table 4.1
#
# `run_table_4_1` trains `E_e` once (cross-entropy), then for each content encoder stage 1 (InfoNCE
# to `z_v`) and stage 2 (heads on the frozen encoders with `0.7 MSE + 0.3 L_vertex`, the emotion
# code dropped for 50 % of the samples), all through the project trainer. Runs are stored under
# `AFFECTLAB_RUNS` and loaded instead of retrained when the data and configuration match.

# %%
table = eeg2face.run_table_4_1(data, cfg, run)
for name, pipeline in table.pipelines.items():
    status = {k: ("loaded" if f.loaded_from_cache else "trained") for k, f in pipeline.fits.items()}
    print(f"{eeg2face.ENCODER_LABELS[name]:38s} {status}")

# %%
history = eeg2face.training_history(table.ours)
plots.training_curves_figure(
    history, columns=[c for c in history.columns if c != "epoch"],
    title=f"{eeg2face.ENCODER_LABELS['eeg2face']} training objectives: {eeg2face.data_label(data)}",
)

# %% [markdown]
# ## Table 4.1 beside the thesis
#
# Our numbers are means over the test segments (5 s pieces of the test trials) of the thesis's
# metrics, in millimetres on the ICT face: LVE is, per frame, the largest error over the lip vertices
# (MeshTalk's lip-sync metric), MCE the same over the mouth-corner vertices, EVE over the forehead,
# cheek and eye vertices. The brackets are 95 % percentile-bootstrap intervals over test segments
# (resampled within each emotion). The thesis's columns are copied from its Table 4.1; the table prints
# them in "mm", the text beside it in "x 10^-4 mm", and they come from FLAME meshes fitted by EMOCA to
# real video. Compare rankings and the distance to the baselines, not the absolute values.

# %%
eeg2face.table_4_1_frame(table)

# %% [markdown]
# The same encoders with content-only inference `f(z_r)` (no emotion code):

# %%
eeg2face.table_4_1_frame(table, mode="content_only")

# %% [markdown]
# The emotion encoder `E_e` on the test windows, against chance:

# %%
eeg2face.emotion_accuracy_frame(table)

# %% [markdown]
# ## Figures
#
# ### Reconstructions from EEG (Figs. 4-1 and 4-3)
#
# Frames of one test trial: the rendered video frame, the mesh of its exact `z_v` (what EMOCA's
# pseudo-ground-truth stands for in the thesis), and EEG2Face's reconstructions from the EEG window
# centred on that frame.

# %%
eeg2face.reconstruction_figure(data, table.ours, size=cfg.frame_size)

# %% [markdown]
# ### Emotion control (Fig. 4-2)
#
# One test EEG window decoded with chosen emotion codes, `f(z_r + g((1 - t) z_a + t z_b))`. Top three
# rows: neutral (t = 0) to happiness, sadness and anger (t = 1). Bottom three rows: the first emotion
# (left column) through neutral (centre) to the second (right). The content `z_r` is the same in every
# image, so only what `g` learned to attach to each emotion changes.

# %%
eeg2face.emotion_control_figure(data, table.ours, size=cfg.frame_size)

# %% [markdown]
# ### Where the errors are
#
# Mean per-vertex error over the test frames, EEG2Face (emotion-enhanced) beside the mean face.

# %%
maps = {
    "EEG2Face emotion-enhanced": eeg2face.vertex_error_map(table.ours.latents["emotion_enhanced"], data),
    "mean face (training mean z_v)": eeg2face.vertex_error_map(eeg2face.mean_face_latents(data), data),
}
eeg2face.error_map_figure(maps, data.latent.face_model,
                          f"Mean vertex error on test frames: {eeg2face.data_label(data)}")

# %% [markdown]
# ## What EEG2Face can and cannot recover: the coupling sweep
#
# The set is rebuilt with the same trajectories, backgrounds and seeds at several couplings, from
# face-locked EMG as strong as the unrelated EMG (coupling 1, 0 dB) down to no coupling at all
# (coupling 0: the EEG still contains EMG, but of another trial). `E_e`, `E_r` and the heads are
# retrained at each level. With no coupling the EEG holds no frame-level information about the
# face, so the best a decoder can do is the mean face, or the per-emotion mean face if it recognises
# the emotion from the planted rhythms.

# %%
sweep = eeg2face.run_coupling_sweep(cfg, run, background, face_model=data.latent.face_model)
eeg2face.coupling_sweep_figure(sweep, f"{eeg2face.ENCODER_LABELS['eeg2face']} vs planted coupling: EAV-like set, "
                                      f"{background.source.split(':')[0]}, seed {run.seed}")

# %%
eeg2face.sweep_frame(sweep, "LVE")

# %%
eeg2face.sweep_frame(sweep, "EVE")

# %% [markdown]
# ## What we learned
#
# The statements below are computed from this run's tables (they change with the profile and seed).

# %%
for sentence in eeg2face.findings(table, sweep):
    print("-", sentence)

# %% [markdown]
# How to read them:
#
# - The per-emotion mean face is what emotion recognition alone can buy; the mean face is what a
#   decoder that learned nothing produces. A useful content decoder must beat the first on the mouth
#   (LVE, MCE), where the planted EMG carries the talking jaw.
# - The sweep is the control the thesis lacks. At coupling 0 the EEG still tells the emotion (the
#   planted rhythms; and the generator's EMG surrogate comes from a trial whose emotion is tied to this
#   trial's, see the deviations), but nothing about the frame: the errors there should lie between the
#   mean face and the per-emotion mean face. Errors below the per-emotion mean face at coupling 0 would
#   mean frame-level content leaks through something other than the planted EMG; errors that fall as
#   the coupling rises show the decoder reading the EMG.
# - EAV's real EEG has EMG whose coupling to the video is unknown, and EMOCA's codes are not exact;
#   the thesis's absolute numbers cannot be checked here, only whether the method can recover a face
#   from EMG-contaminated EEG and how its errors scale with the EMG it is given.
#
# ## Deviations from the thesis
#
# - **Data.** EAV's EEG and video (20 subjects, 100 speaking trials each) are replaced by the
#   semi-synthetic set above. Its EEG background is one real recording (EEGLAB tutorial data, a visual
#   attention task, one person); "subjects" differ in face identity, expressivity and trajectories,
#   not in their EEG. Emotion effects in the EEG and the EMG are planted (see
#   `affectlab.data.generate.paired` and `affectlab.data.generate.eeg`). The "unrelated" EMG surrogate
#   of trial i is the face of trial i + k (one fixed shift k per set), so its emotion is mostly a fixed
#   function of trial i's: at coupling 0 the EMG carries no frame-level content but still carries
#   emotion.
# - **Vision latent.** FLAME + EMOCA are replaced by ICT-FaceKit (MIT) with exact codes: 50 PCA
#   components of its 53 blendshapes + a 3-parameter jaw mapped onto its jaw blendshapes (FLAME's
#   jaw is a rotation). Shape and global pose are fixed at zero, as in the thesis.
# - **Samples.** One sample per face frame with an EEG window of `cfg.window_seconds` (1 s) centred on
#   it, every `cfg.frame_step`-th frame; the thesis pairs each frame with its 10 EEG samples but does
#   not state the encoder's input window. With 100 samples braindecode's ShallowFBCSPNet and
#   EEGConformer pool their temporal features to a single step.
# - **Split.** Each subject's trials are split 6:2 per emotion and one model is trained on all
#   subjects' training trials (the thesis says "subject-dependent" without saying whether one model
#   per subject was trained).
# - **Training length.** Adam, lr 1e-3, batch 64 as stated; epochs per profile (quick: see `cfg`
#   above; the thesis: 400 and 300). No validation set, final weights, as the thesis reports none.
#   Stage 2 runs on the frozen encoders' outputs computed once (the same gradients, far less compute).
# - **Losses.** InfoNCE with temperature `cfg.temperature` (the thesis writes none, i.e. 1);
#   `L_mse` is the mean squared error (the thesis writes an L2 norm and calls it MSE); `L_vertex` is
#   the mean per-vertex distance in mm (the thesis writes the L2 norm of the whole mesh difference,
#   FLAME being in metres), which sets how the 0.7 / 0.3 weights balance the two terms.
# - **Metrics.** MCE has no formula in the thesis: the LVE recipe on the mouth-corner vertices. EVE
#   follows the text (forehead, cheeks, eyes); the table's caption calls it "Eye Vertex Error". The
#   thesis gives no intervals; ours are bootstrap CIs over 5 s test segments.
# - **Baselines.** braindecode's EEGNet, ShallowFBCSPNet and EEGConformer with default settings and
#   a linear embedding in place of the classifier; "TCT" is a reconstruction (no code available);
#   one `E_e` is shared by all content encoders.
# - **Not reproduced.** Fig. 4-4 (photorealistic avatars from albedo maps): the project renderer is
#   greyscale. Frames in the figures are frontal (the generator's slow head motion is omitted).

# %%
print(f"chapter run time: {(time.perf_counter() - started) / 60:.1f} min (profile {run.profile})")
