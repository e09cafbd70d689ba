"""The `jaxrnn` command's persistent compilation cache: where it goes, how to turn it off, and that a
second process with the same shapes loads the programs instead of recompiling them."""

import os
import subprocess
import sys

from jaxrnn.cli import compilation_cache_env


def test_cache_location_and_opt_out(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    got = compilation_cache_env(env)
    assert got["JAX_COMPILATION_CACHE_DIR"] == os.path.join(str(tmp_path), "jaxrnn", "xla")
    assert compilation_cache_env({**env, "JAXRNN_CACHE": "0"}) == {}
    assert compilation_cache_env({**env, "JAX_COMPILATION_CACHE_DIR": "/elsewhere"}) == {}  # the user's wins


def test_second_process_loads_the_cached_programs(tmp_path):
    """Two fresh processes compile the same jitted program; the second finds it in the cache dir."""
    code = (
        "import jax, jax.numpy as jnp\n"
        "jax.monitoring.register_event_listener(lambda name, **kw: print('event', name))\n"
        "f = jax.jit(lambda x: jnp.linalg.solve(x @ x.T + jnp.eye(8), x).sum())\n"
        "print(float(f(jnp.ones((8, 8)))))\n"
    )
    env = dict(os.environ, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.update(compilation_cache_env({"XDG_CACHE_HOME": str(tmp_path)}))
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    cache = tmp_path / "jaxrnn" / "xla"
    out1 = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    entries = set(os.listdir(cache))
    assert entries, "the first process wrote no cache entry"
    out2 = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    value = lambda out: [line for line in out.stdout.splitlines() if not line.startswith("event")]
    assert value(out1) == value(out2)
    hit = "event /jax/compilation_cache/cache_hits"
    assert hit not in out1.stdout.splitlines() and hit in out2.stdout.splitlines()  # loaded, not recompiled
    assert set(os.listdir(cache)) == entries
