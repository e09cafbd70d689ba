"""jaxrnn: train thousands of linear RNNs at once, with the theory of how they learn beside them."""

import os as _os

# jaxlib's CPU LAPACK kernels (the LU behind every solve) call a multithreaded OpenBLAS once per
# small matrix of a vmapped batch; its spinning threads gain nothing there and, on a busy machine,
# made a 64x64 solve 100x slower (measured: 0.7 ms alone, 170-240 ms beside two other busy processes).
# A default only: an explicit OPENBLAS_NUM_THREADS wins, and it acts only if numpy is not loaded yet.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from importlib.metadata import PackageNotFoundError, version as _version  # noqa: E402

from .loss import (
    discrete_loss as discrete_loss,
    finite_horizon_loss as finite_horizon_loss,
    population_loss as population_loss,
    population_loss_and_grad as population_loss_and_grad,
    sampled_loss as sampled_loss,
)
from .lyapunov import gramians as gramians, solve_lyapunov as solve_lyapunov, solve_stein as solve_stein
from .model import LinearRNN as LinearRNN, init_network as init_network, init_population as init_population
from .targets import (
    ExponentialSum as ExponentialSum,
    damped_oscillator as damped_oscillator,
    exponential_sum as exponential_sum,
    leaky_integrator as leaky_integrator,
    perfect_integrator as perfect_integrator,
)

try:
    __version__ = _version("jaxrnn")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0.0.0"

from .train import (
    AbstractLoss as AbstractLoss,
    AbstractMethod as AbstractMethod,
    DiscreteLoss as DiscreteLoss,
    ExactLoss as ExactLoss,
    FiniteHorizonLoss as FiniteHorizonLoss,
    GradientDescent as GradientDescent,
    GradientFlow as GradientFlow,
    OptaxOptimizer as OptaxOptimizer,
    SampledLoss as SampledLoss,
    StiffFlow as StiffFlow,
    TrainResult as TrainResult,
    train as train,
)
from .observables import learning_time as learning_time, outlier_eigenvalue as outlier_eigenvalue
