"""One population training step: today's reference paths against the fast paths, side by side.

Workloads (the peers' benchmark settings, see docs/core.md): leaky integrator c = 0.1, W0 ~ N(0, sigma^2/N)
with sigma = 0.1, float32, plain gradient descent with eta = 0.02 (u, v at eta N), M networks.
- exact: `population_loss_and_grad` (reference: fixed K = doublings_for(c/4) = 12, shift 1, vmapped)
  against `population_loss_and_grad_fast` (adaptive K <= 12, automatic shift) laid out as `train` lays it
  out on this backend ("fast": on CPU from N = 64 one network at a time with the Neumann Cayley inverse,
  `jaxrnn._population`) and vmapped with the LU inverse ("fast_vmap": the layout before it, and on
  accelerators), and a plain `jit(vmap(value_and_grad))` port with K = 8 fixed (what a JAX user writes).
- sampled: Euler dt = 0.1, T = 200 steps, B = 16 paths: `sampled_loss` (BPTT through lax.scan) against
  `sampled_loss_fft` (impulse response + FFT convolution), same noise.
Each contender is one jitted population step with the parameters donated (jaxrnn's compiled with the XLA
options `train` uses, `jaxrnn._compile.HOT`; the port with XLA's defaults), timed round-robin (best of
`--reps`, `--n` steps each, every repetition from the same start state), after checking that the fast
step's loss and gradient equal the reference's on the same state. `--state learned` starts at a trained
network: the outlier 1 - c along q = u/|u|
(W <- W0 - W0 q q^T + (1 - c) q q^T) and v.u = N, so k = k* (a fixed point of gradient descent): the
regime where the Lyapunov solve needs the most doublings. Also measures the one-core float32
matmul peak (2048^2, in every round just before the contenders) and the fast exact step's achieved
FLOP/s (analytic count of the algorithm run: K, the Neumann squarings and the LU fallbacks counted on the
start state) for "fast" (one call per step,
as the other contenders) and "fast_train" (`--n` steps in one program, each network on its own through all
of them, as `train` runs a block of steps between log points: no population-sized buffers per step), and
"matmuls_only": the same number of N^3 products per step with nothing else, in `train`'s layout (the floor:
what the step would reach without its O(N^2) work and per-operation overhead).

    OPENBLAS_NUM_THREADS=1 taskset -c 0 python benchmarks/bench_step.py --mode exact --N 64 --M 512
"""

import argparse
import os
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxrnn  # noqa: E402
from jaxrnn.loss import population_loss_and_grad_fast, sampled_loss_fft  # noqa: E402
from jaxrnn._compile import HOT, compiler_options  # noqa: E402
from jaxrnn._population import over_networks, per_network  # noqa: E402
from jaxrnn.lyapunov import _cayley_resolvent_counted, cayley_shift_and_subspace, doublings_for  # noqa: E402

C, SIGMA, ETA, DT, T, B = 0.1, 0.1, 0.02, 0.1, 200, 16


def init(N, M, state, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((M, N, N)) * (SIGMA / np.sqrt(N))
    u = rng.standard_normal((M, N))
    v = rng.standard_normal((M, N))
    if state == "learned":  # W u = (1 - c) u (the rest of W0 kept, deflated along u) and v.u = N:
        q = u / np.linalg.norm(u, axis=1, keepdims=True)  # k(tau) = v.u/N e^{-c tau} = k*, a fixed point
        W = W - np.einsum("mij,mj,mk->mik", W, q, q) + (1 - C) * np.einsum("mi,mj->mij", q, q)
        v = v + (N - np.einsum("mi,mi->m", u, v))[:, None] * q / np.linalg.norm(u, axis=1, keepdims=True)
    return jaxrnn.LinearRNN(*(jnp.asarray(a, jnp.float32) for a in (W, u, v)))


def sgd(model, grad):
    N = model.N
    return jaxrnn.LinearRNN(model.W - ETA * grad.W, model.u - ETA * N * grad.u, model.v - ETA * N * grad.v)


def port_exact(model, J=8, p=1.0):
    """The plain port: Cayley + J squared-Smith doublings for P only, autodiff gradient."""
    W, u, v = model.W, model.u, model.v
    N = W.shape[0]
    eye = jnp.eye(N, dtype=W.dtype)
    A = W - eye
    X = jnp.linalg.solve(p * eye - A, jnp.concatenate([p * eye + A, u[:, None]], axis=1))
    Ak, w = X[:, :N], X[:, N]
    P = 2.0 * p * jnp.outer(w, w)
    for _ in range(J):
        P = P + Ak @ P @ Ak.T
        Ak = Ak @ Ak
    q = jnp.linalg.solve((1.0 + C) * eye - W, u)
    return 0.5 * (v @ P @ v / N**2 - 2.0 * (v @ q) / N + 1.0 / (2 * C))


def compiled(step, name):
    """A contender's jitted step, parameters donated: jaxrnn's with the XLA options `train` compiles its
    steps with (`jaxrnn._compile.HOT`), the plain port with XLA's defaults, as its user would."""
    opts = None if name == "jax_port" else compiler_options(HOT)
    return jax.jit(step, donate_argnums=0, **({"compiler_options": opts} if opts else {}))


def make_steps(mode, target, K, N, n):
    """The contenders' jitted population steps (name -> (function, steps per call)) and their raw losses."""
    if mode == "exact":
        ref = lambda m: population_loss_and_grad(m, target, doublings=K, shift=1.0)[:2]
        inverse = jaxrnn.ExactLoss().resolved(target, one_at_a_time=per_network(N)).inverse
        fast = lambda m: population_loss_and_grad_fast(m, target, max_doublings=K, inverse=inverse)[:2]
        fast_vmap = lambda m: population_loss_and_grad_fast(m, target, max_doublings=K, inverse="lu")[:2]
        port = lambda m: jax.value_and_grad(port_exact)(m)
        fns = {"reference": ref, "fast": fast, "fast_vmap": fast_vmap, "jax_port": port}

        def wrap(f):
            layout = (lambda g, m: over_networks(g, N, m)) if f is fast else (lambda g, m: jax.vmap(g)(m))

            def step(model, key):
                loss, grad = layout(f, model)
                return sgd(model, grad), jnp.mean(loss)

            return step

        def train_block(model, key):
            """n steps in one program, each network on its own through all of them: as `train` runs a block of
            steps between log points (`AbstractFixedStepMethod.advance`)."""
            one = lambda m: jax.lax.fori_loop(0, n, lambda i, m: sgd(m, fast(m)[1]), m)
            return over_networks(one, N, model), jnp.zeros((), model.W.dtype)

        jitted = {name: (compiled(wrap(f), name), 1) for name, f in fns.items()}
        jitted["fast_train"] = (compiled(train_block, "fast_train"), n)
        return jitted, fns
    else:
        kw = dict(dt=DT, batch=B, steps=T)
        fns = {
            "reference": lambda m, k: jax.value_and_grad(lambda m: jaxrnn.sampled_loss(m, target, k, **kw))(
                m
            ),
            "fast": lambda m, k: jax.value_and_grad(lambda m: sampled_loss_fft(m, target, k, **kw))(m),
        }

        def wrap(f):
            def step(model, key):
                keys = jax.random.split(key, model.W.shape[0])
                loss, grad = jax.vmap(f)(model, keys)
                return sgd(model, grad), jnp.mean(loss)

            return step

    return {name: (compiled(wrap(f), name), 1) for name, f in fns.items()}, fns


def matmul_peak(n=2048, reps=3):
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def exact_step_products(K, squarings, lu, k0=4):
    """The fast exact step's N^3 products, in units of one product (2 N^3 flops), with K doublings, the first
    min(K, k0) on factors: the Cayley inverse (`lu`: the fraction of networks that ran the LU inverse, counted
    as one product; `squarings`: Neumann squarings done, one squaring and one product each), one squaring per
    factored doubling, five products per dense doubling, O P."""
    return lu + 2 * squarings + min(K, k0) + 5 * max(K - k0, 0) + 1


def fast_exact_flops(N, K, k0=4, squarings=0.0, lu=1.0):
    """Nominal flops of one fast exact network-step: its N^3 products (`exact_step_products`) plus, in the
    N x 2^k0 factor buffer, two growth products 2 * 2 N^2 2^k0 per factored doubling and P and O from the
    factors 2 * 2 N^2 2^k0 (the O(N^2) resolvent chains and the vector work left out)."""
    factor_flops = (min(K, k0) + 1) * 4 * N**2 * 2**k0
    return 2 * N**3 * exact_step_products(K, squarings, lu, k0) + factor_flops


def matmuls_only_block(products: int, n: int):
    """n steps of the fast step's N^3 products alone (a dependent chain per network, in `train`'s layout):
    the rate the step would reach with no other work, the floor against which its overhead is measured."""

    def chain(m):
        B = m.W * 0.5  # |B| < 1: the chain neither overflows nor flushes to zero over n steps
        X = B
        for _ in range(products):
            X = X @ B
        return jaxrnn.LinearRNN(m.W + 1e-6 * X, m.u, m.v)

    def block(model, key):
        one = lambda m: jax.lax.fori_loop(0, n, lambda i, m: chain(m), m)
        return over_networks(one, model.W.shape[-1], model), jnp.zeros((), model.W.dtype)

    return block


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="exact", choices=["exact", "sampled"])
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--M", type=int, default=512)
    ap.add_argument("--n", type=int, default=3, help="steps per timed repetition")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--state", default="init", choices=["init", "learned"])
    ap.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="exact mode: also time fast_train and matmuls_only this many times, each between two peak "
        "products, for FLOP/s ratios taken within a second of their peak",
    )
    a = ap.parse_args()
    target = jaxrnn.leaky_integrator(C, dtype=jnp.float32)
    K = doublings_for(C / 4)
    steps, raw = make_steps(a.mode, target, K, a.N, a.n)
    key = jax.random.key(0)

    # equality of the fast and reference loss/gradient on the same state (float32); the learned state is a
    # fixed point (loss and gradient zero up to rounding), so compare there with v moved by 10%
    m0 = init(a.N, a.M, a.state)
    sub = jax.tree.map(lambda x: x[:8], m0)
    if a.state == "learned":
        sub = jaxrnn.LinearRNN(sub.W, sub.u, 1.1 * sub.v)
    if a.mode == "exact":
        out = {k: jax.jit(jax.vmap(raw[k]))(sub) for k in ("reference", "fast")}
        Ks = jax.jit(
            jax.vmap(
                lambda m: population_loss_and_grad_fast(m, target, max_doublings=K, return_doublings=True)[3]
            )
        )(m0)
        Ks = np.asarray(Ks)
        inverse = jaxrnn.ExactLoss().resolved(target, one_at_a_time=per_network(a.N)).inverse

        def count(W):  # as `population_loss_and_grad_fast` runs it: the automatic shift and its subspace
            p, subspace = cayley_shift_and_subspace(W)
            return _cayley_resolvent_counted(W - jnp.eye(a.N, dtype=W.dtype), p, inverse, subspace)

        _, squarings, lu = (np.asarray(x) for x in jax.jit(jax.vmap(count))(m0.W))
        products = max(
            1, round(exact_step_products(float(np.mean(Ks)), float(np.mean(squarings)), float(np.mean(lu))))
        )
        steps["matmuls_only"] = (compiled(matmuls_only_block(products, a.n), "matmuls_only"), a.n)
    else:
        keys = jax.random.split(key, 8)
        out = {k: jax.jit(jax.vmap(raw[k]))(sub, keys) for k in ("reference", "fast")}
    (lr, gr), (lf, gf) = out["reference"], out["fast"]
    loss_err = float(jnp.max(jnp.abs(lf - lr) / jnp.abs(lr)))
    grad_err = max(
        float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y)))
        for x, y in zip(jax.tree.leaves(gf), jax.tree.leaves(gr))
    )

    def start_state():  # every timed call starts from the same state (the flops are counted on it)
        return jax.block_until_ready(jax.tree.map(jnp.copy, m0))

    best, first = {}, {}
    for name, (step, _) in steps.items():
        m = start_state()
        t0 = time.perf_counter()
        jax.block_until_ready(step(m, key))
        first[name] = time.perf_counter() - t0
        best[name] = 0.0

    def rate_of(name, calls, salt=0):
        """Network-steps/s of `calls` chained calls of a contender from the start state."""
        step, per_call = steps[name]
        m = start_state()
        t0 = time.perf_counter()
        for i in range(calls):
            m, L = step(m, jax.random.fold_in(key, salt + i))
        jax.block_until_ready(m)
        return calls * per_call * a.M / (time.perf_counter() - t0)

    # the peak is measured in every round, just before the contenders, so that each round's FLOP/s ratio
    # compares rates measured within seconds of each other (this machine's speed drifts by 10-30% in minutes)
    rounds: list[dict[str, float]] = []
    for _ in range(a.reps):
        rate = {"peak": matmul_peak()}
        for name, (_, per_call) in steps.items():
            rate[name] = rate_of(name, a.n // per_call)
            best[name] = max(best[name], rate[name])
        rounds.append(rate)
    peak = max(r["peak"] for r in rounds)
    # paired ratios: one call of each, bracketed by two single peak products (~0.2 s each), so each ratio
    # compares rates measured within a second of each other
    pairs: list[dict[str, float]] = []
    for p in range(a.pairs if a.mode == "exact" else 0):
        before = matmul_peak(reps=1)
        rate = {name: rate_of(name, 1, salt=p) for name in ("fast_train", "matmuls_only")}
        pairs.append({**rate, "peak": 0.5 * (before + matmul_peak(reps=1))})

    print(
        f"mode={a.mode} state={a.state} N={a.N} M={a.M} float32 backend={jax.default_backend()} n={a.n} reps={a.reps}"
    )
    print(
        f"fast vs reference on 8 networks: max rel loss err {loss_err:.1e}, max rel grad err {grad_err:.1e}"
    )
    for name in steps:
        print(f"  {name:10s} {best[name]:9.1f} network-steps/s (best)   first call {first[name]:.1f} s")
    print(
        f"  ratio fast/reference {best['fast'] / best['reference']:.2f}x"
        + (f", fast/jax_port {best['fast'] / best['jax_port']:.2f}x" if "jax_port" in best else "")
        + (f", fast/fast_vmap {best['fast'] / best['fast_vmap']:.2f}x" if "fast_vmap" in best else "")
    )
    print(
        f"  one-core float32 matmul peak (2048^2): {peak / 1e9:.1f} GFLOP/s (best round; per round "
        + ", ".join(f"{r['peak'] / 1e9:.1f}" for r in rounds)
        + ")"
    )
    if a.mode == "exact":
        Kmean = float(np.mean(Ks))
        fl = fast_exact_flops(
            a.N, Kmean, min(4, max(1, int(np.log2(a.N)) - 1)), float(np.mean(squarings)), float(np.mean(lu))
        )
        print(
            f"  fast: doublings used at the start state mean {Kmean:.2f} (min {Ks.min()}, max {Ks.max()}; reference {K})"
        )
        print(
            f"  fast: layout {'one network at a time' if per_network(a.N) else 'vmap'}, Cayley inverse "
            f"{inverse!r}: Neumann squarings mean {np.mean(squarings):.2f}, LU on {100 * np.mean(lu):.0f}% "
            "of networks"
        )
        floor = products * 2 * a.N**3
        print(
            f"  matmuls_only ({products} N^3 products per step, nothing else): "
            f"{floor * best['matmuls_only'] / 1e9:.1f} GFLOP/s = {100 * floor * best['matmuls_only'] / peak:.0f}% "
            f"of peak; fast_train spends {100 * (1 - best['fast_train'] / best['matmuls_only']):.0f}% of its time "
            "outside these products (best against best)"
        )
        for name in ("fast", "fast_train"):
            paired = [100 * fl * r[name] / r["peak"] for r in rounds]
            print(
                f"  {name}: ~{fl / a.N**3:.1f} N^3 flops/network-step -> {fl * best[name] / 1e9:.1f} GFLOP/s "
                f"= {100 * fl * best[name] / peak:.0f}% of peak (best against best); each round against its own "
                f"peak: {', '.join(f'{x:.0f}%' for x in paired)} (median {np.median(paired):.0f}%)"
            )
        if pairs:
            for name, flops in (("fast_train", fl), ("matmuls_only", floor)):
                x = np.array([100 * flops * r[name] / r["peak"] for r in pairs])
                q25, q50, q75 = np.percentile(x, [25, 50, 75])
                print(
                    f"  {name}, {len(x)} calls each between two peak products: % of that peak "
                    f"median {q50:.0f}% "
                    f"(quartiles {q25:.0f}-{q75:.0f}%, min {x.min():.0f}%, max {x.max():.0f}%; "
                    f"{100 * np.mean(x >= 60):.0f}% of calls >= 60%)"
                )


population_loss_and_grad = jaxrnn.population_loss_and_grad

if __name__ == "__main__":
    main()
