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
# # Identity, then valence and arousal, then categories: probing FER networks layer by layer
#
# T, Atas, Goldstein, Vilenchik and Sofer, *Face processing in humans and deep neural networks
# share similar computational principles*, claim that a deep convolutional network trained to
# name facial expressions processes a face in three stages:
#
# 1. its early layers encode **identity** (Study 1, Fig. 2a-b): faces cluster by person, with
#    silhouettes w.r.t. identity of 0.417 (`batchnorm_1`) and 0.498 (`flatten`) for their network
#    NN1 on DISFA;
# 2. its penultimate layer encodes **valence and arousal** (Study 1, Fig. 2c-d; Study 4, Figs. 5-7):
#    the identity clusters dissolve (silhouette -0.138 at `dropout_4`) and the first two principal
#    components follow valence and arousal, in a U-shaped scatter like human IAPS ratings;
# 3. the output layer gives the **categories**.
#
# Identity dominates even raw pixels and untrained networks (Study 2, Fig. 3), and supervised
# training lifts the expression signal from layer to layer (Study 3, Fig. 4). The networks are
# the lightweight CNN of Sharma (2020), trained on FER2013 for three classes (NN1) or seven (NN2),
# and its untrained twin (NN3); ResMaskNet and EmoFAN play the role of stronger networks.
#
# This chapter reruns every study. ResMaskNet and EmoFAN weights cannot be obtained here, so the
# real FER2013-trained **mini-Xception** (Arriaga et al. 2017, MIT licence) stands in for them.
# DISFA and KDEF are licence-gated: we probe **real CK+48 faces** (all 981 frames of 118 subjects)
# when the data root has it, and **generated faces** whose identity, expression and
# valence/arousal are planted (KDEF-like posed faces at four intensities, so valence and arousal
# vary within each category; DISFA-like sequences), so we can check whether the analysis recovers
# what we put in, and see where real faces differ. No face image from a research dataset is
# shown: every face below is generated.

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
from affectlab.chapters import hierarchy as dh
from affectlab.config import resolve_run
from affectlab.reporting import ResultsRecorder

started = time.perf_counter()
run = resolve_run(PROFILE, DATA_ROOT or None, SEED, DEVICE)
cfg = dh.chapter_config(run.profile)
results = ResultsRecorder(dh.CHAPTER, profile=run.profile, seed=run.seed, data=run.data_label)
pd.set_option("display.precision", 3)
display(Markdown(f"This run: profile **{run.profile}**, seed {run.seed}, device `{run.device}`, "
                 f"data: **{run.data_label}**. Scatter-plot embedding: **{cfg.embedding.upper()}**."))

# %% [markdown]
# ## Training data: FER2013
#
# NN1 and NN2 are trained on FER2013 with its original seven labels (Goodfellow et al. 2013):
# Training for fitting, PublicTest for choosing the best epoch, PrivateTest for Table 1. NN1 sees
# only happy, sad and neutral faces, relabelled 0, 1, 2. The profile decides how much of each split
# is used (class-capped training subsets, class-proportional validation and test subsets).

# %%
fer = dh.load_fer2013(run, cfg)
display(Markdown(f"FER2013 source: `{fer.source}`; full splits: "
                 + ", ".join(f"{k} {v:,} faces" for k, v in fer.full_sizes.items()) + "."))
fer.counts_table()

# %% [markdown]
# ## The networks: train or load
#
# `build_networks` trains NN1 and NN2 with the book's trainer (`affectlab.train.fit`; a finished
# run with the same data and configuration is loaded, not retrained), builds NN3 from NN1's own
# initial weights without training it (so NN3 is exactly NN1 before learning; its BatchNorm
# statistics are recalibrated on the same training faces as NN1's, so the two differ by training
# alone), and loads the mini-Xception weights. The paper gives no optimiser or schedule: the quick
# profile uses the project's fast FER recipe over a wall-clock budget, validating every few dozen
# steps so the learning curve shows what more training would give (deviations table).

# %%
display(Markdown(dh.training_summary(cfg, fer)))
nets, notes = dh.build_networks(fer, cfg, run)
dh.network_table(nets, notes)

# %%
curves = {name: net.fit.history for name, net in nets.items() if net.fit is not None}
for name, history in curves.items():
    display(plots.training_curves_figure(
        history, ["loss", "train_accuracy", "val_accuracy"],
        title=f"{name} (Sharma CNN) on FER2013 ({'real' if fer.real else 'generated stand-in'}), seed {run.seed}",
        ylabels={"loss": "cross-entropy (nats)", "train_accuracy": "accuracy (fraction)",
                 "val_accuracy": "accuracy (fraction)"}))
display(Markdown(dh.learning_curve_findings(results, nets, cfg, fer)))
if "mini-Xception" not in nets:
    display(Markdown(f"**mini-Xception is not available**: {notes['mini-Xception']}. Its rows and "
                     "panels are left out below."))

# %% [markdown]
# ## Table 1: accuracy on FER2013 PrivateTest
#
# Ours beside the paper's (Table 1a). Each network is scored on PrivateTest faces of its own
# classes: NN1 and its untrained twin NN3 on the same happy/sad/neutral faces, NN2 on all seven
# classes, the published mini-Xception on the whole split (the table names the faces). The
# intervals are 95 % bootstrap intervals (class-stratified resampling of test faces). Two
# baselines sit beside each score: uniform chance and always answering the test set's majority
# class. The paper's column is **the paper's number**, not ours.

# %%
table1 = dh.accuracy_table(nets, fer, cfg, run)
table1

# %% [markdown]
# Did NN1 and NN2 learn? Each trained network against the majority class and against the same
# architecture untrained from the same initial weights, on the same test faces (paired bootstrap):

# %%
verdicts = dh.learning_verdicts(nets, fer, cfg, run)
learned = verdicts.attrs["learned"]
display(verdicts)
display(Markdown(dh.table1_findings(results, table1, verdicts, fer, cfg, nets)))

# %% [markdown]
# ## Faces to probe
#
# Study 3 needs faces labelled with identity: the paper used 12 DISFA subjects and the 70 KDEF
# actors. Here:
#
# - **CK+48**: 48x48 crops of the last three frames of the CK+ sequences (118 subjects, seven
#   expressions, no neutral, several expressions per subject): all 981 frames in the quick profile,
#   the real identity-labelled faces of Studies 2-3;
# - **KDEF-like (generated)**: posed studio faces, one per identity, expression and intensity
#   (0.25 to 1), planted valence and arousal = the circumplex point (Russell & Mehrabian 1977)
#   scaled by the intensity, so they vary within a category;
# - **DISFA-like (generated)**: continuous sequences of spontaneous-looking expression episodes
#   with head drift, V/A following each episode's intensity.

# %%
probes = dh.load_probe_sets(run, cfg, labeller=nets.get("mini-Xception"))
dh.probe_set_table(probes)

# %%
dh.generated_faces_figure(probes["kdef_gen"], identities=2)

# %% [markdown]
# ### mini-Xception's clean test
#
# mini-Xception's PrivateTest score in Table 1 is not a clean test (its checkpoint was selected on
# PublicTest + PrivateTest). CK+ was never part of its training: its present-only accuracy there
# (the six CK+ expressions FER2013 has, arg-max over them) is.

# %%
ck_clean = (dh.present_only_accuracy(nets["mini-Xception"], probes["ckplus"], cfg, seed=run.seed)
            if "mini-Xception" in nets else None)
display(Markdown(dh.minixception_findings(results, ck_clean, probes["ckplus"] if ck_clean else None)))

# %% [markdown]
# ## Layer activations
#
# For every network and probing set, the outputs of the named layers are read with forward hooks
# (eval mode) and reduced to their principal components: silhouettes use the first 10 PCs, as the
# paper's Study 3 ("10 PCs explain more than 60 % of the variance"). For the Sharma CNN we read
# `batchnorm_1` (end of the first convolution pair, the paper's early layer), `dropout_1` and
# `dropout_2` (ends of blocks 1-2), `flatten` (the paper's identity layer), `dense_1`, `dropout_4`
# (the 128-D penultimate layer) and `out_layer`; for mini-Xception the stem, the four residual
# blocks, the class convolution and the output.

# %%
codes, profiles = dh.probe_networks(nets, probes, cfg, seed=run.seed)
roles = {name: net.roles for name, net in nets.items()}
dh.layer_widths_table(codes, roles, "kdef_gen")

# %% [markdown]
# ## Study 1: identity first, valence and arousal at the penultimate layer
#
# The paper fed DISFA frames to NN1 and drew UMAP scatter plots of `batchnorm_1`, `flatten` and
# `dropout_4` (Fig. 2a-c). We do the same on the DISFA-like sequences (and on CK+48), colouring each
# point by identity and by expression, and score the clustering by identity with silhouettes
# (95 % intervals from resampling subjects, the embedding held fixed).

# %%
study1 = {key: dh.study1_umaps(codes[("NN1", key)], probes[key], cfg, seed=run.seed)
          for key in ("disfa_gen", "ckplus")}
method = cfg.embedding.upper()
for key, study in study1.items():
    p = probes[key]
    display(dh.embedding_grid_figure(
        study.embeddings,
        dh.probe_colourings(p),
        title=f"Fig. 2a-c: {method} of NN1 layers on {p.title} ({len(p.faces)} faces, {p.n_subjects} subjects), "
              f"seed {run.seed}",
        axis_names=(f"{method}1", f"{method}2")))
    display(Markdown(f"Silhouettes of NN1's layers on **{p.title}** (paper: NN1 on DISFA):"))
    display(study.table)

# %% [markdown]
# ### Faces along the penultimate axes (Fig. 2d)
#
# The paper picked 21 equally spaced faces along each axis of the `dropout_4` scatter plot and read
# UMAP2 as arousal and UMAP1 as valence. On generated faces the planted valence and arousal say
# whether that reading holds.

# %%
xy = study1["disfa_gen"].embeddings["dropout_4"]
strips = {f"{method}2 (low to high)": dh.axis_samples(xy[:, 1], cfg.n_axis_faces),
          f"{method}1 (low to high)": dh.axis_samples(xy[:, 0], cfg.n_axis_faces)}
display(dh.face_strip_figure(probes["disfa_gen"], strips,
                             f"Fig. 2d: DISFA-like faces along NN1 dropout_4 {method} axes, seed {run.seed}"))
dh.axis_va_correlation(xy, probes["disfa_gen"], (f"{method}1", f"{method}2"))

# %% [markdown]
# ## Study 2: identity dominates pixels and untrained networks
#
# PCA and UMAP of the raw pixels, and UMAP of the untrained NN3's penultimate layer, coloured by
# identity (Fig. 3), on the generated DISFA-like sequences and on the real CK+ faces. The paper's
# fourth panel, VGG16's `fc2` layer, needs ImageNet weights that cannot be downloaded here; the
# table keeps its number for reference. The same two studies run on any identity-labelled set in
# one call, e.g. your own faces listed in a CSV with `path,label,identity` columns:
# `dh.identity_studies(affectlab.data.faces.load_image_csv("my_faces.csv"), nets, cfg)`.

# %%
study2s = {key: dh.study2_identity_dominance(probes[key], codes[("NN3", key)], cfg, seed=run.seed)
           for key in ("disfa_gen", "ckplus")}
study2 = study2s["disfa_gen"]
for key, st in study2s.items():
    p = probes[key]
    display(dh.embedding_grid_figure(
        st.embeddings,
        dh.probe_colourings(p),
        title=f"Fig. 3: pixels and untrained NN3 on {p.title} ({len(p.faces)} faces, {p.n_subjects} subjects), "
              f"seed {run.seed}",
        axis_names=(f"{method}1", f"{method}2")))
    n_expressions = len(set(p.faces.labels.tolist()) - {-1})
    display(Markdown(f"Study 2 on **{p.title}** (identity: {p.n_subjects} clusters; expression: "
                     f"{n_expressions} clusters):"))
    display(st.table)

# %% [markdown]
# ## Study 3: silhouettes across layers (Fig. 4)
#
# For each network and probing set: the silhouette of the faces' first 10 PCs at each layer,
# w.r.t. expression and w.r.t. identity (Euclidean). The error bars are 95 % intervals from
# resampling subjects with replacement (1,000 resamples in the quick profile): they show how much
# the score depends on which people were photographed. NN3 (dashed) is the untrained control.

# %%
study3 = dh.study3_table(profiles, roles)
titles = {key: p.title for key, p in probes.items()}
display(dh.silhouette_roles_figure(
    study3, f"Fig. 4: silhouettes on the first 10 PCs of the early, identity, penultimate and final layers, "
            f"seed {run.seed}", titles))
dh.study3_summary(study3)

# %% [markdown]
# ### Does identity dominate on real faces?
#
# Identity against expression at the early layer, set by set, real CK+ beside the generated sets.
# The two silhouettes separate different numbers of clusters (CK+: 118 people, 7 expressions);
# both intervals resample the same people. CK+ keeps the last three frames of each sequence, which
# are near-copies: a person's frames of one sequence cluster whatever the network encodes, so CK+
# is also scored on one frame per sequence (the apex), where only identity across a person's
# different expressions can make faces cluster.

# %%
display(Markdown(dh.identity_findings(results, profiles, roles, probes, study2s, codes, cfg, seed=run.seed)))

# %% [markdown]
# ### The three stages, measured (identity, then V/A, then categories)
#
# The paper's picture is identity early, valence/arousal at the penultimate layer, categories at the
# output. Per network, across its probed layers: the identity silhouette, the **partial R^2 of
# valence/arousal after the category** (how much of what the category leaves unexplained a layer's
# 10 PCs explain, out of fold, folds split by identity: V/A that is not the label in disguise) and
# the expression silhouette, each with its 95 % band resampling identities. On CK+ V/A is the
# circumplex point of the label, so there is nothing beyond the category to read there. The first
# panel is the paper's picture (its NN1 silhouettes on DISFA and where it places the stages).

# %%
stage_nets = [n for n in ("NN1", "NN2", "NN3", "mini-Xception") if n in nets]
for key in ("kdef_gen", "ckplus"):
    display(dh.three_stage_figure(
        {n: profiles[(n, key)] for n in stage_nets},
        f"Three stages on {probes[key].title} ({len(probes[key].faces)} faces, {probes[key].n_subjects} identities), "
        f"seed {run.seed}", paper_identity=dh.PAPER_STUDY1_SILHOUETTES, paper_layers=dh.SHARMA_PROBE_LAYERS))
dh.va_partial_table({(n, key): profiles[(n, key)] for n in stage_nets for key in ("kdef_gen", "ckplus")})

# %% [markdown]
# Every probed layer, not only the four of Fig. 4 (KDEF-like faces):

# %%
display(dh.layer_profile_figure(
    {name: profiles[(name, "kdef_gen")] for name in nets},
    ["identity silhouette", "expression silhouette", "V/A R2 (CV by subject)", "V/A partial R2 after category"],
    f"All probed layers on KDEF-like faces: silhouettes (10 PCs) and V/A decoding R^2, seed {run.seed}"))
profiles[("NN2", "kdef_gen")]

# %% [markdown]
# ## Study 4: valence and arousal in the penultimate layer (Figs. 5-7)
#
# PCA of the penultimate layer on the KDEF-like faces (980, as the paper's KDEF set), PC1 against
# valence and PC2 against arousal. The paper's reference was EmoFAN's predicted V/A; ours is the
# V/A planted in each face. PCA signs are arbitrary: we flip them so PC1 rises with valence and PC2
# with arousal, and judge |r|. The intervals resample identities (each person gives 28 faces).

# %%
pc_nets = [name for name in ("NN2", "mini-Xception", "NN1", "NN3") if name in nets]
study4 = {name: dh.study4_penultimate(nets[name], codes[(name, "kdef_gen")], probes["kdef_gen"], cfg, seed=run.seed)
          for name in pc_nets}
display(dh.penultimate_figure([study4[n] for n in pc_nets],
                              f"Fig. 5: penultimate-layer PCs on KDEF-like faces ({len(probes['kdef_gen'].faces)}), "
                              f"seed {run.seed}"))
display(Markdown("r with 95 % cluster-bootstrap intervals over identities; the U-shape test fits PC2 = b0 + b1 PC1 + b2 PC1^2 (PC1 "
                 "standardised): b2 > 0 with a small p is the upward-opening U of Fig. 5a."))
dh.study4_table(study4)

# %% [markdown]
# The same for CK+48, whose valence and arousal are the circumplex points of the expression labels:

# %%
ck_pcs = {name: dh.study4_penultimate(nets[name], codes[(name, "ckplus")], probes["ckplus"], cfg, seed=run.seed)
          for name in pc_nets}
dh.study4_table(ck_pcs)

# %% [markdown]
# ### Faces along PC1 and PC2 (Fig. 6) and the predictions on the PC plane (Fig. 7)

# %%
for name in [n for n in ("NN2", "mini-Xception") if n in study4]:
    s = study4[name]
    display(dh.face_strip_figure(
        probes["kdef_gen"], {"PC2 (low to high)": dh.axis_samples(s.pcs[:, 1], cfg.n_axis_faces),
                             "PC1 (low to high)": dh.axis_samples(s.pcs[:, 0], cfg.n_axis_faces)},
        f"Fig. 6: KDEF-like faces along {name} {s.layer} PC1/PC2, seed {run.seed}"))
for name in [n for n in ("NN2", "mini-Xception") if n in study4]:
    display(dh.prediction_map_figure(
        study4[name], f"Fig. 7: {name} predictions on its penultimate PC plane, KDEF-like faces, seed {run.seed} "
                      "(green correct, red wrong, grey other expressions)"))

# %% [markdown]
# ## Grad-CAM per convolutional block (Fig. 2e-f)
#
# Grad-CAM (Selvaraju et al. 2017, with captum) of NN1's `batchnorm_1`, `conv2d_4` and `conv2d_6`
# for the predicted class, on a smiling and a frowning generated face; mini-Xception's stem, second
# and last residual blocks for comparison. The paper saw edges in the first block, eyes and lips
# in `conv2d_4`, and lips (smile) or brows (frown) in `conv2d_6`.

# %%
for name in [n for n in ("NN1", "mini-Xception") if n in nets]:
    images, cams, captions = dh.gradcam_examples(nets[name], probes["kdef_gen"])
    display(dh.gradcam_figure(images, cams, captions,
                              f"Fig. 2e-f: Grad-CAM of {name} on KDEF-like faces, seed {run.seed}"))

# %% [markdown]
# Because the generated faces come with landmarks, we can measure where each map looks: the mean
# share of the Grad-CAM mass inside the brows-and-eyes box and inside the mouth box, divided by the
# share of the image the box covers (enrichment: 1 = what a uniform map gives, 2 = twice that).
# The full table, with both shares and 95 % bootstrap intervals over faces, is `regions`.

# %%
regions = pd.concat([dh.gradcam_region_table(nets[n], probes["kdef_gen"], cfg)
                     for n in ("NN1", "mini-Xception") if n in nets], ignore_index=True)
regions.pivot_table(index=["network", "layer"], columns="expression", sort=False,
                    values=["brows and eyes: enrichment", "mouth: enrichment"])

# %% [markdown]
# ## Known ground truth: does the analysis recover what was planted?
#
# On the generated faces identity, expression and valence/arousal are known exactly. First the
# ceiling: the same measures on the generator's own factors (its 53 expression blendshape weights
# and, for KDEF-like faces, its identity shape coefficients), beside each network's early and
# penultimate layers. A measure that cannot find a factor in the factor itself would be useless.

# %%
controls = {key: dh.layer_profile(dh.planted_factor_codes(probes[key], cfg), probes[key], {}, cfg, seed=run.seed)
            for key in ("kdef_gen", "disfa_gen")}
dh.positive_control_table(controls, profiles, roles)

# %% [markdown]
# Then each of the paper's claims as a comparison between layers, with a three-way verdict: "yes"
# when the two 95 % subject-bootstrap intervals do not overlap in the claimed direction, "no" when
# they do not overlap the other way, "undecided" otherwise (NN3, untrained, is the control for
# which "training lifts expression" should fail). "training status" carries Table 1's verdict: a
# trained network that did not beat its untrained twin is "untrained-equivalent".

# %%
checks = dh.ground_truth_checks(profiles, roles, {n: net.trained for n, net in nets.items()},
                                ("kdef_gen", "disfa_gen"), learned=learned)
checks.pivot_table(index=["dataset", "network"], columns="claim", values="holds here", aggfunc="first")

# %%
checks.set_index(["dataset", "network", "claim"])

# %% [markdown]
# ## Beyond the paper: NeuroGaze-Distill students
#
# Chapter 01 trains ResNet students on FER with and without prototype distillation from an EEG
# valence/arousal teacher (B0 cross-entropy, B1 +KD, B2 +Proto-KD, B3 +D-Geo). If Proto-KD
# injects V/A structure, V/A should become readable earlier in the network. When finished student
# runs exist under the runs directory, we probe them the same way on the KDEF-like faces; those
# whose FERPlus test accuracy in chapter 01 reaches 72 % count as trained networks.

# %%
students = dh.probe_students(probes["kdef_gen"], cfg, run)
if not students.runs.empty:
    display(students.runs[["variant", "seed", "arch", "input side", "epochs", "test accuracy (%)",
                            "counts as trained", "run_dir"]])
    display(dh.layer_profile_figure(
        students.profiles, ["V/A R2 (CV by subject)", "identity silhouette", "expression silhouette"],
        f"NeuroGaze-Distill students on KDEF-like faces, seed {run.seed}"))
    display(dh.va_emergence_table(students.profiles, students.roles))
    if students.comparison is not None:
        display(students.comparison)
display(Markdown(dh.student_findings(students, probes["kdef_gen"].n_subjects)))

# %% [markdown]
# For reference, the same V/A read-out (cross-validated R^2 of valence and arousal from the first
# 10 PCs, folds split by identity) for the chapter's networks on the KDEF-like faces:

# %%
dh.va_emergence_table({name: profiles[(name, "kdef_gen")] for name in nets}, roles)

# %% [markdown]
# ## What we learned

# %%
display(Markdown(dh.what_we_learned(results, profiles, roles, probes, study2, study4, verdicts)))
display(Markdown("Verdicts of the ground-truth checks per network and claim, counted over the generated sets "
                 "(KDEF-like, DISFA-like):"))
checks.groupby(["network", "claim"])["holds here"].value_counts().unstack(fill_value=0)

# %%
display(Markdown(dh.caveats(cfg, fer, learned, nets)))

# %% [markdown]
# ## Deviations from the paper

# %%
display(dh.deviations(cfg, run, fer, nets, probes))
display(Markdown(f"This run took {(time.perf_counter() - started) / 60:.1f} min of wall time "
                 f"(profile {run.profile}, device `{run.device}`)."))
