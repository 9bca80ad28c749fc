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
# DISFA and KDEF are licence-gated: we probe CK+48 (118 subjects) when the data root has it, and
# **generated faces** whose identity, expression and valence/arousal are planted (KDEF-like posed
# faces, DISFA-like sequences), so we can check whether the analysis recovers what we put in.
# No face image from a research dataset is shown: every face below is generated.

# %% tags=["parameters"]
PROFILE = "quick"
DATA_ROOT = ""
SEED = 0
DEVICE = "auto"

# %%
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from affectlab import plots
from affectlab.config import resolve_run
from affectlab.data import FERPLUS_CLASSES
from affectlab.pipelines import dcnn_hierarchy as dh

started = time.perf_counter()
run = resolve_run(PROFILE, DATA_ROOT or None, SEED, DEVICE)
cfg = dh.chapter_config(run.profile)
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
# initial weights without training it (so NN3 is exactly NN1 before learning), and loads the
# mini-Xception weights. The paper gives no optimiser or schedule; ours is in the deviations table.

# %%
display(Markdown(
    f"Training here: NN1 {dh.training_steps(cfg, len(fer.train['NN1']))} and NN2 "
    f"{dh.training_steps(cfg, len(fer.train['NN2']))} optimiser steps of {cfg.batch_size} faces "
    f"({'Adam' if cfg.weight_decay == 0 else 'AdamW'}, lr {cfg.lr:g}, cosine schedule), drawn from "
    f"{len(fer.train['NN1']):,} and {len(fer.train['NN2']):,} training faces, best of {cfg.epochs} validations."))
nets, notes = dh.build_networks(fer, cfg, run)
pd.DataFrame({"network": list(nets), "what it is": [n.description for n in nets.values()],
              "run": [notes[n] for n in nets]}).set_index("network")

# %%
curves = {name: net.fit.history for name, net in nets.items() if net.fit is not None}
for name, history in curves.items():
    display(plots.training_curves_figure(
        history, ["loss", "train_accuracy", "val_accuracy"],
        title=f"{name} (Sharma CNN) on FER2013 ({'real' if fer.real else 'generated stand-in'}), seed {run.seed}",
        ylabels={"loss": "cross-entropy (nats)", "train_accuracy": "accuracy (fraction)",
                 "val_accuracy": "accuracy (fraction)"}))
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


def _acc(name: str) -> str:
    row = table1.loc[name]
    return f"{row['accuracy here (%)']:.1f} % [{row['95% CI low']:.1f}, {row['95% CI high']:.1f}]"


def _diff(name: str, i: int) -> str:
    row = verdicts.loc[name].iloc[i]
    return f"{row['accuracy difference (pp)']:+.1f} pp [{row['95% CI low']:+.1f}, {row['95% CI high']:+.1f}]"


PAPER_COLUMN = "paper's accuracy (%)"
lines = []
for name in [n for n in ("NN1", "NN2") if n in learned]:
    row = table1.loc[name]
    lines.append(
        f"- **{name}** scores {_acc(name)} on {row['test faces']} faces (paper: {row[PAPER_COLUMN]} %); "
        f"the majority class ({row['majority class']}) gives {row['majority class (%)']:.1f} %, uniform chance "
        f"{row['chance, uniform (%)']:.1f} %. Against the majority class: {_diff(name, 0)}; against "
        f"{verdicts.loc[name].index[1]}: {_diff(name, 1)}. "
        + ("It **learned**: both intervals lie above zero." if learned[name] else
           f"It does **not** beat {' or '.join(verdicts.loc[name].index[(verdicts.loc[name]['above it'] != 'yes').to_numpy()])} "
           "(interval not above zero): every later result for it describes an untrained-equivalent network."))
if "NN3" in table1.index:
    lines.append(f"- **NN3** (untrained) scores {_acc('NN3')} (paper: 31.41 %).")
if "mini-Xception" in table1.index:
    row = table1.loc["mini-Xception"]
    lines.append(
        f"- **mini-Xception** (published weights) scores {_acc('mini-Xception')} on {row['test split']}"
        + ((f"; its authors report about 66 %, and the issue asks for at least 65 %: "
            f"{'met' if row['accuracy here (%)'] >= 65 else 'NOT met'}.") if fer.real else
           ": the generated stand-in, far from the real FER2013 photographs it was trained on."))
gaps = {n: float(dh.PAPER_TABLE1[n]) - table1.loc[n, "accuracy here (%)"] for n in ("NN1", "NN2") if n in table1.index}
if cfg.profile != "paper" and gaps:
    lines.append(f"- NN1 and NN2 are trained for {dh.training_steps(cfg, len(fer.train['NN2']))} steps here, not to "
                 "convergence as in the paper (see the deviations): "
                 + ", ".join(f"{n} is {g:.1f} points {'below' if g > 0 else 'above'} the paper's number"
                             for n, g in gaps.items())
                 + ". mini-Xception shows what a fully trained FER2013 network looks like in the same analyses.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Faces to probe
#
# Study 3 needs faces labelled with identity: the paper used 12 DISFA subjects and the 70 KDEF
# actors. Here:
#
# - **CK+48**: 48x48 crops of the last frames of the CK+ sequences (118 subjects, seven expressions,
#   no neutral); we keep the apex frame of each sequence (its two other frames are near-copies);
# - **KDEF-like (generated)**: posed studio faces, one per identity and expression, planted valence
#   and arousal from the circumplex (Russell & Mehrabian 1977);
# - **DISFA-like (generated)**: continuous sequences of spontaneous-looking expression episodes
#   with head drift, V/A following each episode's intensity.

# %%
probes = dh.load_probe_sets(run, cfg, labeller=nets.get("mini-Xception"))
pd.DataFrame([{"set": p.title, "source": p.faces.source, "faces": len(p.faces), "subjects": p.n_subjects,
               "expressions": ", ".join(c for c, n in p.faces.class_counts().items() if n),
               "labels": p.label_source, "valence/arousal": p.va_source} for p in probes.values()]).set_index("set")

# %%
kdef = probes["kdef_gen"]
first = [int(np.flatnonzero((kdef.faces.identity.numpy() == i) & (kdef.faces.labels.numpy() == c))[0])
         for i in np.unique(kdef.faces.identity.numpy())[:2] for c in np.unique(kdef.faces.labels.numpy())]
plots.image_grid_figure(kdef.faces.images[first], [FERPLUS_CLASSES[int(kdef.faces.labels[i])] for i in first],
                        columns=7, title="KDEF-like generated faces, two identities (rendered from the ICT-FaceKit model)")

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
codes = {(name, key): dh.layer_codes(net, probe, cfg) for name, net in nets.items() for key, probe in probes.items()}
roles = {name: net.roles for name, net in nets.items()}
profiles = {(name, key): dh.layer_profile(codes[(name, key)], probes[key], roles[name], cfg, seed=run.seed)
            for name, key in codes}
widths = pd.DataFrame([{"network": name, "layer": layer, "values per face": width,
                        "role in Fig. 4": {v: k for k, v in roles[name].items()}.get(layer, "")}
                       for name in nets for layer, width in codes[(name, "kdef_gen")].dims.items()])
widths.set_index(["network", "layer"])

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
    names = p.faces.identity_names if p.n_subjects <= 12 else None
    display(dh.embedding_grid_figure(
        study.embeddings,
        {"identity": (p.faces.identity.numpy(), names), "expression": (p.faces.labels.numpy(), FERPLUS_CLASSES)},
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
# identity (Fig. 3). The paper's fourth panel, VGG16's `fc2` layer, needs ImageNet weights that
# cannot be downloaded here; the table keeps its number for reference.

# %%
study2 = dh.study2_identity_dominance(probes["disfa_gen"], codes[("NN3", "disfa_gen")], cfg, seed=run.seed)
p = probes["disfa_gen"]
display(dh.embedding_grid_figure(
    study2.embeddings,
    {"identity": (p.faces.identity.numpy(), p.faces.identity_names),
     "expression": (p.faces.labels.numpy(), FERPLUS_CLASSES)},
    title=f"Fig. 3: pixels and untrained NN3 on {p.title} ({len(p.faces)} faces), seed {run.seed}",
    axis_names=(f"{method}1", f"{method}2")))
study2.table

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
# Every probed layer, not only the four of Fig. 4 (KDEF-like faces):

# %%
display(dh.layer_profile_figure(
    {name: profiles[(name, "kdef_gen")] for name in nets},
    ["identity silhouette", "expression silhouette", "V/A R2 (CV by subject)"],
    f"All probed layers on KDEF-like faces: silhouettes (10 PCs) and V/A decoding R^2, seed {run.seed}"))
profiles[("NN2", "kdef_gen")]

# %% [markdown]
# ## Study 4: valence and arousal in the penultimate layer (Figs. 5-7)
#
# PCA of the penultimate layer on the KDEF-like faces (the paper used 980 KDEF faces), PC1 against
# valence and PC2 against arousal. The paper's reference was EmoFAN's predicted V/A; ours is the
# V/A planted in each face. PCA signs are arbitrary: we flip them so PC1 rises with valence and PC2
# with arousal, and judge |r|.

# %%
pc_nets = [name for name in ("NN2", "mini-Xception", "NN1", "NN3") if name in nets]
study4 = {name: dh.study4_penultimate(nets[name], codes[(name, "kdef_gen")], probes["kdef_gen"]) for name in pc_nets}
display(dh.penultimate_figure([study4[n] for n in pc_nets],
                              f"Fig. 5: penultimate-layer PCs on KDEF-like faces ({len(probes['kdef_gen'].faces)}), "
                              f"seed {run.seed}"))
display(Markdown("r with Fisher 95 % intervals; the U-shape test fits PC2 = b0 + b1 PC1 + b2 PC1^2 (PC1 "
                 "standardised): b2 > 0 with a small p is the upward-opening U of Fig. 5a."))
dh.study4_table(study4)

# %% [markdown]
# The same for CK+48, whose valence and arousal are the circumplex points of the expression labels:

# %%
ck_pcs = {name: dh.study4_penultimate(nets[name], codes[(name, "ckplus")], probes["ckplus"]) for name in pc_nets}
dh.study4_table(ck_pcs)

# %% [markdown]
# ### Faces along PC1 and PC2 (Fig. 6) and the predictions on the PC plane (Fig. 7)

# %%
s = study4["NN2"]
display(dh.face_strip_figure(
    probes["kdef_gen"], {"PC2 (low to high)": dh.axis_samples(s.pcs[:, 1], cfg.n_axis_faces),
                         "PC1 (low to high)": dh.axis_samples(s.pcs[:, 0], cfg.n_axis_faces)},
    f"Fig. 6: KDEF-like faces along NN2 dropout_4 PC1/PC2, seed {run.seed}"))
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
# runs exist under the runs directory, we probe them the same way on the KDEF-like faces.

# %%
student_runs = dh.latest_student_per_variant(dh.find_student_runs())
if student_runs.empty:
    display(Markdown("**Skipped**: no finished NeuroGaze-Distill student runs were found under the runs "
                     "directory (`AFFECTLAB_RUNS`, default `./runs`). Run chapter 01 "
                     "(`notebooks/01_neurogaze_distill.py`) first with the same runs directory."))
else:
    students = {row["variant"]: dh.load_student(row, run.device) for _, row in student_runs.iterrows()}
    student_codes = {v: dh.layer_codes(net, probes["kdef_gen"], cfg) for v, net in students.items()}
    student_roles = {v: n.roles for v, n in students.items()}
    student_profiles = {v: dh.layer_profile(student_codes[v], probes["kdef_gen"], student_roles[v], cfg, seed=run.seed)
                        for v in students}
    display(student_runs[["variant", "seed", "arch", "input side", "epochs", "run_dir"]])
    display(dh.layer_profile_figure(
        student_profiles, ["V/A R2 (CV by subject)", "identity silhouette", "expression silhouette"],
        f"NeuroGaze-Distill students on KDEF-like faces, seed {run.seed}"))
    display(dh.va_emergence_table(student_profiles, student_roles))
    if "B0" in students and len(students) > 1:
        comparison = dh.student_va_comparison(student_codes, probes["kdef_gen"], student_roles, cfg, seed=run.seed)
        display(comparison)
        said = []
        for v in [v for v in ("B1", "B2", "B3", "Full") if v in comparison.index]:
            r = comparison.loc[v]
            said.append(f"- **{v} vs B0**: penultimate V/A R^2 {r['R2 minus B0']:+.3f} [{r['R2 diff low']:+.3f}, "
                        f"{r['R2 diff high']:+.3f}] (clearer: {r['V/A clearer']}); half-max depth "
                        f"{r['depth minus B0']:+.2f} [{r['depth diff low']:+.2f}, {r['depth diff high']:+.2f}] "
                        f"(earlier: {r['V/A earlier']}).")
        display(Markdown("Does Proto-KD make V/A emerge earlier or more clearly? Paired 95 % intervals from "
                         f"resampling the {probes['kdef_gen'].n_subjects} KDEF-like identities (the only probing "
                         "set used here; one student run per variant):\n" + "\n".join(said)))
    else:
        display(Markdown("No B0 (cross-entropy) student was found, so the students cannot be compared with it."))

# %% [markdown]
# For reference, the same V/A read-out (cross-validated R^2 of valence and arousal from the first
# 10 PCs, folds split by identity) for the chapter's networks on the KDEF-like faces:

# %%
dh.va_emergence_table({name: profiles[(name, "kdef_gen")] for name in nets}, roles)

# %% [markdown]
# ## What we learned

# %%
def _sil(net: str, key: str, role: str, target: str) -> str:
    row = profiles[(net, key)].loc[roles[net][role]]
    return dh.with_ci(*(row[f"{target} silhouette{c}"] for c in ("", " low", " high")))


lines = []
for key in ("ckplus", "kdef_gen", "disfa_gen"):
    t = probes[key].title
    for net in [n for n in ("NN2", "mini-Xception") if n in nets]:
        lines.append(
            f"- **{net}, {t}**: identity silhouette {_sil(net, key, 'early', 'identity')} (early) -> "
            f"{_sil(net, key, 'final', 'identity')} (output); expression silhouette "
            f"{_sil(net, key, 'early', 'expression')} -> {_sil(net, key, 'final', 'expression')}.")
r4 = {n: s.regression for n, s in study4.items()}
lines.append("- Study 4 on KDEF-like faces (signs aligned, Fisher 95 % intervals): " + "; ".join(
    f"{n} r(PC1, valence) = {dh.with_ci(*r.loc[('PC1', 'valence'), ['r', 'r low', 'r high']])}, r(PC2, arousal) = "
    f"{dh.with_ci(*r.loc[('PC2', 'arousal'), ['r', 'r low', 'r high']])}" for n, r in r4.items()) + ".")
for name in [n for n in ("NN1", "NN2") if n in learned]:
    lines.append(f"- Table 1 verdict: {name} {'learned' if learned[name] else 'did NOT learn'} "
                 f"({name} minus its untrained twin: {_diff(name, 1)}).")
lines.append("- Accuracy on the KDEF-like generated faces (7 expressions): " + "; ".join(
    f"{n} {100 * np.mean(st.predicted == st.labels):.0f} %" for n, st in study4.items() if n != "NN3")
    + ". The FER2013-trained networks meet rendered faces here for the first time, so a low score"
    " means their later layers may not read these faces the way they read photographs.")
lines.append(f"- Study 2 on {probes['disfa_gen'].title}: identity silhouette of the raw pixels on 10 PCs "
             f"{study2.table.loc['pixels, PCA (10 PCs)', 'identity silhouette']:.2f} against an expression "
             f"silhouette of {study2.table.loc['pixels, PCA (10 PCs)', 'expression silhouette']:.2f}.")
display(Markdown("\n".join(lines)))
display(Markdown("Verdicts of the ground-truth checks per network and claim, counted over the generated sets "
                 "(KDEF-like, DISFA-like):"))
checks.groupby(["network", "claim"])["holds here"].value_counts().unstack(fill_value=0)

# %%
caveats = []
if cfg.profile != "paper":
    caveats.append(
        f"NN1 and NN2 were trained for {dh.training_steps(cfg, len(fer.train['NN1']))} and "
        f"{dh.training_steps(cfg, len(fer.train['NN2']))} steps of {cfg.batch_size} faces "
        f"({dh.training_steps(cfg, len(fer.train['NN2'])) * cfg.batch_size:,} NN2 faces seen, "
        f"{dh.training_steps(cfg, len(fer.train['NN2'])) * cfg.batch_size / len(fer.train['NN2']):.2f} passes over its "
        "training data), so \"training lifts expression\" is tested on weakly trained networks; mini-Xception, "
        "fully trained on FER2013, is the fairer test of that claim.")
not_learned = [n for n, ok in learned.items() if not ok]
if not_learned:
    caveats.append(f"{' and '.join(not_learned)} did not beat its untrained twin and the majority class in Table 1: "
                   "its rows describe an untrained-equivalent network.")
caveats.append("The generated faces have clean, planted factors: identity (face shape, skin, brows, lips) and "
               "expression (FACS action units) are independent by construction, which makes the check exact but "
               "easier than real photographs.")
display(Markdown("Read these numbers with the deviations below in mind. " + " ".join(caveats)))

# %% [markdown]
# ## Deviations from the paper

# %%
display(dh.deviations(cfg, run, fer, nets, probes))
display(Markdown(f"This run took {(time.perf_counter() - started) / 60:.1f} min of wall time "
                 f"(profile {run.profile}, device `{run.device}`)."))
