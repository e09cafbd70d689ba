# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # A tour of jaxrnn
#
# Train a population of linear RNNs to integrate white noise with the target filter exp(-c t), watch one
# outlier eigenvalue of W leave the bulk, and put the sigma = 0 theory beside the simulation.
# This file is a jupytext "percent" script: `jupytext --to notebook examples/tour.py` makes a notebook;
# `python examples/tour.py` runs it as it is (CI runs it at this small size). The mathematics is in
# docs/concepts.md.

# %%
import os

import jax

jax.config.update("jax_enable_x64", True)  # the theory comparison below is made to 1e-3

import numpy as np

import jaxrnn
import jaxrnn.theory as T

N, M, c = int(os.environ.get("TOUR_N", 32)), 4, 0.3
out = os.environ.get("TOUR_OUT", "results/tour")
os.makedirs(out, exist_ok=True)

# %% [markdown]
# ## A population: four networks with small initial weights (sigma = 0.1), in one compiled program

# %%
pop = jaxrnn.init_population(N=N, sigma=0.1, seed=0, indices=M)
target = jaxrnn.leaky_integrator(c)
res = jaxrnn.train(pop, target, eta=1.0, method=jaxrnn.GradientFlow(dt=0.02), steps=200, n_log=41)
print("learning times (L < 1e-2 L(0)):", np.round(res.t_learn, 3))
print("outlier at the end:", np.round(res.outlier[:, -1].real, 4), "-> target 1 - c =", 1 - c)

# %% [markdown]
# ## The sigma = 0 theory from each network's own initial condition
# At sigma = 0 the flow stays in span{u0, v0}: the exact 8-ODE reduction (docs/concepts.md §5) is the
# simulation itself, to the ODE solver's tolerance (RK4 at the same dt: the same compiled program as above;
# measured t_learn difference ~1e-7).

# %%
pop0 = jaxrnn.init_population(N=N, sigma=0.0, seed=0, indices=M)
sim0 = jaxrnn.train(pop0, target, eta=1.0, method=jaxrnn.GradientFlow(dt=0.02), steps=200, n_log=41)
th0 = T.solve(target, t1=float(sim0.t[-1]), ts=sim0.t, network=pop0)
rel = np.abs(sim0.t_learn / np.asarray(th0.t_learn) - 1)
print("sigma = 0: simulation vs its own 8-ODE, t_learn relative difference:", rel.max())
assert rel.max() < 1e-3, rel

# %% [markdown]
# ## A figure: the loss falls once the outlier has left the bulk

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
ax[0].semilogy(res.t, res.loss.T)
ax[0].set(xlabel="flow time t", ylabel="population loss L(t)", title=f"N = {N}, sigma = 0.1, c = {c}")
ax[1].plot(res.t, res.outlier.real.T)
ax[1].axhline(1 - c, color="k", ls="--", label="1 - c")
ax[1].set(xlabel="flow time t", ylabel="Re outlier of W")
ax[1].legend()
fig.savefig(f"{out}/tour.png", dpi=100)
print("wrote", f"{out}/tour.png")
