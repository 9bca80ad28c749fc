# ---
# jupyter:
#   jupytext:
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

from IPython.display import Markdown, display

from affectlab import plots
from affectlab.chapters import eeg2face
from affectlab.config import resolve_run
from affectlab.reporting import ResultsRecorder

run = resolve_run(PROFILE, DATA_ROOT or None, SEED, DEVICE)
cfg = eeg2face.chapter_config(run.profile)
print(f"PyTorch threads: {eeg2face.configure_threads(cfg)} (why: eeg2face.configure_threads)")
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
#   Test trials take their background from the last half of the whole recording, training trials
#   from the first half, each part laid end to end so every second is reused as evenly as its length
#   allows. Test trials still share background seconds with each other, so every interval below
#   resamples those 5 s background segments as well as the trials. Without a data root the embedded
#   default's *generated* recording is used instead.
# - **Generated**: one smooth blendshape trajectory per trial (the emotion's FACS recipe, talking jaw,
#   blinks), the EMG it produces on temporal and frontal channels (20-45 Hz), mixed with a
#   face-independent EMG surrogate as `(coupling x face + surrogate) / (coupling + 1)`; the surrogate
#   is the face of a separately generated trial whose emotion is drawn at random, so at coupling 0
#   the EMG says nothing about the trial's face *or* its emotion. The emotion's rhythms lie outside
#   the EMG band: frontal alpha asymmetry (8-12 Hz) for valence, a 13-19 Hz low-beta rhythm for
#   arousal. The face reaches the EEG through **two envelopes only** (mouth: jaw opening + 0.5 x the
#   mean of 8 mouth blendshapes; brow: brow blendshapes); the channels they reach are printed below.
#   Lip *shape* therefore reaches the EEG only as one number per instant: smile, press, stretch,
#   funnel and pucker all enter that mouth envelope, averaged with the jaw, so the EEG cannot tell a
#   smile from a pucker of the same strength. Eye and cheek blendshapes have no path into the EEG.
# - **Exact targets**: `z_v` = the 50 principal components of the 53 ICT-FaceKit blendshapes
#   (fitted on the training frames) + the 3 jaw parameters, the stand-in for FLAME's 53 codes. No
#   EMOCA pseudo-ground-truth is needed; frames are rendered only for the figures.
#
# - **Re-posed faces** (Sec. 3.0.6): the thesis retargets each frame's face into the five emotions with
#   LivePortrait, changing the upper face only, and pairs them with one-hot emotion codes to train
#   `g`. Here the generator re-poses the same trajectory exactly (the emotion recipe of the brow, eye,
#   cheek-squint and nose-sneer blendshapes swapped, the lower face and jaw kept).
#
# Each sample is one face frame (10 fps) with a 1 s EEG window centred on it (the baselines need 1 s);
# trials are split 6:2 per subject and emotion (subject-dependent, Sec. 3.0.1). The thesis pairs
# each frame with its *own* 10 EEG samples (100 ms); how `E_r` reads its window is chosen below.
#
# **Real EAV data.** The public EAV EEG loader keeps the *listening* columns, while the thesis pairs
# the *speaking* trials with video: load a real EAV copy with
# `affectlab.data.load("eav", root, split="speaking")` to pair it the thesis's way.

# %%
background = eeg2face.background_eeg(run)
data = eeg2face.build_chapter_data(cfg, run, background)
results = ResultsRecorder(eeg2face.CHAPTER, profile=run.profile, seed=run.seed, data=eeg2face.data_label(data))
print(data.source)
print(f"{len(data)} samples of {data.eeg.shape[1]} channels x {data.eeg.shape[2]} EEG samples "
      f"({cfg.window_seconds:g} s at 100 Hz); z_v variance outside the 50 components: {data.latent.dropped_variance:.2e}")
print(f"planted mouth EMG reaches {', '.join(data.emg_channels['mouth'])}; brow EMG reaches "
      f"{', '.join(data.emg_channels['brow'])}")
data.counts()

# %% [markdown]
# One test trial: the face trajectory, the EMG drive it produces and the EEG that results.

# %%
eeg2face.trial_figure(data)

# %% [markdown]
# ## Train or load: both stages for every encoder of Table 4.1, with several seeds
#
# `run_table_4_1` does, for each of `cfg.n_seeds` training seeds: `E_e` once (cross-entropy), then
# for each content encoder stage 1 (InfoNCE to `z_v`) and stage 2 (heads on the frozen encoders with
# `0.7 MSE + 0.3 L_vertex`, the emotion code dropped for 50 % of the samples, plus the re-posed faces
# with one-hot codes), all through the project trainer. Runs are stored under `AFFECTLAB_RUNS` and
# loaded instead of retrained when the data and configuration match.
#
# **What `E_r` reads.** `E_r` has no positional encoding (Sec. 4.1.1), so with a 1 s window its
# attention pooling cannot tell the frame's own 100 ms from the context. Two fixes are measured
# first, on *validation* trials (one training trial per subject and emotion held out; the test trials
# are not touched): `frame`, the thesis's pairing (only the frame's own 10 EEG samples), and
# `positional`, the whole window with a learned position embedding (a deviation). The one with the
# lower validation LVE becomes `E_r` for the rest of the chapter.

# %%
table = eeg2face.run_table_4_1(data, cfg, run)
print(f"E_r input: {table.selection['chosen']}; {table.selection['reason']}")
eeg2face.selection_frame(table)

# %%
eeg2face.training_status_frame(table)

# %%
history = eeg2face.training_history(table.ours)
plots.training_curves_figure(
    history, columns=[c for c in history.columns if c != "epoch"],
    title=(f"{eeg2face.ENCODER_LABELS['eeg2face']} training objectives ({cfg.emotion_epochs} / {cfg.stage1_epochs} / "
           f"{cfg.stage2_epochs} epochs for E_e / E_r / heads): {eeg2face.data_label(data)}"),
    ylabels={"E_e cross-entropy": "cross-entropy (nats)", "E_r InfoNCE": "InfoNCE (nats)",
             "heads 0.7 MSE(z_v)": "0.7 x MSE (z_v units^2)", "heads 0.3 L_vertex (mm)": "0.3 x L_vertex (mm)"},
)

# %% [markdown]
# ## Table 4.1 beside the thesis
#
# Our numbers are means over the test frames and the training seeds of the thesis's metrics, in
# millimetres on the ICT face: LVE is, per frame, the largest error over the lip vertices (MeshTalk's
# lip-sync metric), MCE the same over the mouth-corner vertices, EVE over the forehead, cheek and eye
# vertices. The brackets are 95 % intervals of the pigeonhole bootstrap, which resamples three
# crossed factors at once: test trials (frames of a trial share its trajectory), 5 s segments of the
# background recording (test trials reuse them) and training seeds. The per-seed means are shown
# beside them. The thesis's columns
# are copied from its Table 4.1; the table prints them in "mm", the text beside it in "x 10^-4 mm",
# and they come from FLAME meshes fitted by EMOCA to real video. Compare rankings and the distance to
# the reference rows, not the absolute values.
#
# The reference rows: the **mean face** is what a decoder that learned nothing predicts; the
# **per-emotion mean face (true label: oracle)** knows the true emotion but nothing about the frame;
# the **per-emotion mean face (E_e's predicted emotion)** is its non-oracle twin: for each test
# window, the average training face of the emotion that the same trained `E_e` as ours predicts for
# that window. It is what "recognise the emotion, then output its average face" achieves with this
# EEG, so an encoder must beat it to show frame-level content beyond the emotion. The two **ceilings**
# are ridge regressions that read the planted signal directly (with the true emotion): the EMG drive
# actually mixed into the EEG at this coupling, and the face-locked actions alone. No decoder of the
# EEG's EMG should be expected to beat them by much.

# %%
print(eeg2face.table_caption(table, "Table 4.1, emotion-enhanced inference f(z_r + g(z_bar))", thesis_columns=True))
eeg2face.table_4_1_frame(table)

# %% [markdown]
# The same encoders with content-only inference `f(z_r)` (no emotion code):

# %%
print(eeg2face.table_caption(table, "Table 4.1, content-only inference f(z_r)", thesis_columns=True))
eeg2face.table_4_1_frame(table, mode="content_only")

# %% [markdown]
# The thesis ranks `E_r` first. Here the ranking is tested, not read off point estimates: each
# baseline's error minus `E_r`'s on the same test frames and seeds (paired differences, mm, 95 % CIs
# over test trials x background segments x seeds):

# %%
print(eeg2face.table_caption(table, "Ranking: baseline minus E_r, emotion-enhanced"))
eeg2face.ranking_table(table, cfg.n_bootstrap, run.seed)

# %% [markdown]
# Each encoder against the mean face, the oracle per-emotion mean face and the per-emotion mean face of
# `E_e`'s predicted emotion, on the same test frames (paired differences, mm; negative means the
# encoder's error is lower). The last columns answer whether the encoder decodes anything beyond
# `E_e`'s emotion:

# %%
print(eeg2face.table_caption(table, "Paired differences, emotion-enhanced"))
eeg2face.comparison_frame(table)

# %% [markdown]
# The emotion encoder `E_e` on the test windows and by majority vote over each test trial's windows,
# against chance (pooled over seeds; CIs resample test trials, background segments and seeds):

# %%
print(eeg2face.table_caption(table, "E_e accuracy, 5 emotions", unit="windows"))
eeg2face.emotion_accuracy_frame(table)

# %% [markdown]
# ## Figures
#
# ### Reconstructions from EEG (Figs. 4-1 and 4-3)
#
# One test frame per emotion, across subjects: the rendered video frame, the mesh of its exact `z_v`
# (what EMOCA's pseudo-ground-truth stands for in the thesis), and EEG2Face's reconstructions from
# the EEG window centred on that frame.

# %%
eeg2face.reconstruction_figure(data, table.ours, size=cfg.frame_size)

# %% [markdown]
# ### Emotion control (Fig. 4-2)
#
# One test EEG window decoded with chosen emotion codes, `f(z_r + g((1 - t) z_a + t z_b))`. Rows 1-3:
# neutral (t = 0) to happiness, sadness and anger (t = 1). Rows 4-6: the first emotion (left column)
# through neutral (centre) to the second (right). Row 7: the blend mode of Sec. 3.0.9,
# `f(z_r + g(Softmax(z_bar + one-hot)))`, for N, S, A, H, C. The content `z_r` is the same in every
# image, so only what `g` learned to attach to each emotion changes.

# %%
eeg2face.emotion_control_figure(data, table.ours, size=cfg.frame_size)

# %% [markdown]
# The same, measured over all test windows: how far (mm, mean over the region's vertices) switching
# the code from Neutral to each emotion moves the lips and the upper face (eyes, brows, forehead),
# beside the same displacement between the re-posed faces `g` learned from (which keep the lips), and
# the model's remaining upper-face error against the re-posed face.

# %%
control = eeg2face.emotion_control_frame(data, table.ours)
print(f"Emotion control, {eeg2face.ENCODER_LABELS['eeg2face']}: {eeg2face.data_label(data)}; mean over "
      f"{int(data.test.sum())} test windows")
control.round(3)

# %% [markdown]
# ### Where the errors are
#
# Mean per-vertex error over the test frames, EEG2Face (emotion-enhanced) beside the mean face.

# %%
eeg2face.error_maps_figure(data, table.ours)

# %% [markdown]
# ## What EEG2Face can and cannot recover: the coupling sweep
#
# The set is rebuilt with the same trajectories, backgrounds and seeds at several couplings, from
# face-locked EMG as strong as the face-independent EMG (coupling 1, 0 dB) down to no coupling at all
# (coupling 0: the EEG still contains EMG, but of a separately generated face of a random emotion).
# `E_e` and `E_r` are retrained at each level (`sweep_epochs`), the heads for `stage2_epochs`, each
# with every training seed. With no coupling the EEG holds no frame-level information about the
# face, so the best a decoder can do is the per-emotion mean face of the emotion it recognises from
# the planted rhythms. The ceiling at each level is the ridge regression on the planted EMG drive
# (with the true emotion): what a decoder that found the EMG perfectly could do. The **control** is
# a small ridge regression on the EEG itself (its 20-45 Hz envelope in 50 ms bins over the window,
# averaged over the temporal and over the frontal electrodes, plus the true emotion): the positive control at coupling 1 (it should beat the per-emotion mean face)
# and the negative control at coupling 0 (it should not). The same contrast for `E_r` is its
# difference to the predicted-emotion mean face at coupling 1 and at coupling 0.

# %%
sweep = eeg2face.run_coupling_sweep(cfg, run, background, face_model=data.latent.face_model,
                                    content_input=table.selection["chosen"])
eeg2face.coupling_sweep_figure(sweep, f"{eeg2face.ENCODER_LABELS['eeg2face']} vs planted coupling: EAV-like set, "
                                      f"{background.source.split(':')[0]}, seed {run.seed}")

# %%
print(eeg2face.table_caption(sweep, "Coupling sweep, E_r"))
eeg2face.sweep_frame(sweep)

# %% [markdown]
# ## What we learned
#
# The headline numbers first (each also written, with its interval, n and data source, to
# `03_eeg2face.results.json` beside the executed chapter), then every statement computed from this
# run's tables (they change with the profile and seed).

# %%
Markdown(eeg2face.record_headline_numbers(results, table, data, sweep))

# %%
for sentence in eeg2face.findings(table, sweep, control):
    print("-", sentence)

# %% [markdown]
# How to read them:
#
# - The per-emotion mean face of `E_e`'s predicted emotion is what emotion recognition alone buys
#   with this EEG (the oracle row assumes a perfect `E_e`); the mean face is what a
#   decoder that learned nothing produces. A useful content decoder must beat the former on the mouth
#   (LVE, MCE), where the planted EMG carries the talking jaw. The ridge ceiling on the planted EMG
#   drive is the other end of the scale: "closes x % of the distance" above places `E_r` between the
#   mean face (0 %) and that ceiling (100 %); a negative share means worse than the mean face.
# - A decoder worse than the mean face has learned something that does not carry over to the test
#   trials: with few training trials, whose backgrounds come from another part of the recording,
#   the heads can fit the training EEG and miss on the test EEG. Longer training (the paper profile)
#   and more trials are the first things to try; the training curves above show whether the losses
#   had levelled off.
# - The sweep is the control the thesis lacks. At coupling 0 the EEG still tells the emotion (the
#   planted rhythms, outside the EMG band), but nothing about the frame: the errors there should lie
#   between the mean face and the per-emotion mean face. Errors below the per-emotion mean face at coupling 0 would
#   mean frame-level content leaks through something other than the planted EMG; errors that fall as
#   the coupling rises show the decoder reading the EMG.
# - EAV's real EEG has EMG whose coupling to the video is unknown, and EMOCA's codes are not exact;
#   the thesis's absolute numbers cannot be checked here, only whether the method can recover a face
#   from EMG-contaminated EEG and how its errors scale with the EMG it is given.
#
# ## Deviations from the thesis
#
# Computed from this run's configuration and data, so the table stays tied to the code:

# %%
with pd.option_context("display.max_colwidth", None):
    display(eeg2face.deviations(cfg, data, table).set_index("aspect"))

# %%
print(f"chapter run time: {(time.perf_counter() - started) / 60:.1f} min (profile {run.profile})")
