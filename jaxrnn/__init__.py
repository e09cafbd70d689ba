"""jaxrnn: train thousands of linear RNNs at once, with the theory of how they learn beside them.

Importing jaxrnn has no side effects: the public names below are loaded on first use (PEP 562), so
`import jaxrnn` neither imports JAX nor touches the environment. (The `jaxrnn` command sets
OPENBLAS_NUM_THREADS=1 for its own process before numpy loads: jaxlib's CPU LAPACK kernels call a
multithreaded OpenBLAS once per small matrix of a vmapped batch, and on a busy machine its spinning
threads made a 64x64 solve 100x slower. In your own scripts, set it yourself if that applies.)
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

# public name -> defining module
_EXPORTS = {
    "discrete_loss": "loss",
    "finite_horizon_loss": "loss",
    "population_loss": "loss",
    "population_loss_and_grad": "loss",
    "sampled_loss": "loss",
    "gramians": "lyapunov",
    "solve_lyapunov": "lyapunov",
    "solve_stein": "lyapunov",
    "LinearRNN": "model",
    "init_network": "model",
    "init_population": "model",
    "ExponentialSum": "targets",
    "damped_oscillator": "targets",
    "exponential_sum": "targets",
    "leaky_integrator": "targets",
    "perfect_integrator": "targets",
    "AbstractLoss": "train",
    "AbstractMethod": "train",
    "DiscreteLoss": "train",
    "ExactLoss": "train",
    "FiniteHorizonLoss": "train",
    "GradientDescent": "train",
    "GradientFlow": "train",
    "OptaxOptimizer": "train",
    "SampledLoss": "train",
    "StiffFlow": "train",
    "TrainResult": "train",
    "train": "train",
    "learning_time": "observables",
    "outlier_eigenvalue": "observables",
}
__all__ = sorted(_EXPORTS) + ["__version__"]  # pyright: ignore[reportUnsupportedDunderAll]


def __getattr__(name: str):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("jaxrnn")
        except PackageNotFoundError:  # pragma: no cover - a source tree without install
            return "0.0.0"
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'jaxrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """Importing a submodule binds it on its package: `jaxrnn.train` (the module) would then hide
    `jaxrnn.train` (the function). Keep the public name, as the eager `from .train import train` did."""

    def __setattr__(self, name, value):
        if (
            name in _EXPORTS
            and isinstance(value, types.ModuleType)
            and value.__name__ == f"{__name__}.{name}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from .loss import (
        discrete_loss,
        finite_horizon_loss,
        population_loss,
        population_loss_and_grad,
        sampled_loss,
    )
    from .lyapunov import gramians, solve_lyapunov, solve_stein
    from .model import LinearRNN, init_network, init_population
    from .observables import learning_time, outlier_eigenvalue
    from .targets import (
        ExponentialSum,
        damped_oscillator,
        exponential_sum,
        leaky_integrator,
        perfect_integrator,
    )
    from .train import (
        AbstractLoss,
        AbstractMethod,
        DiscreteLoss,
        ExactLoss,
        FiniteHorizonLoss,
        GradientDescent,
        GradientFlow,
        OptaxOptimizer,
        SampledLoss,
        StiffFlow,
        TrainResult,
        train,
    )
