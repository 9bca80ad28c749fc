# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: affectlab (.venv)
#     language: python
#     name: affectlab
# ---

# %% [markdown]
# # Data
#
# What each dataset available to this run holds.

# %% tags=["parameters"]
PROFILE = "quick"
DATA_ROOT = ""
SEED = 0
DEVICE = "auto"

# %%
from affectlab.config import resolve_run

run = resolve_run(PROFILE, DATA_ROOT or None, SEED, DEVICE)
print(run.to_dict())
