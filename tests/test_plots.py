"""Figures from a store: every kind writes PNG and PDF; `jaxrnn plot`, `compare` and `info` work."""

from jaxrnn.cli import main
from jaxrnn.plots import plot_store
from jaxrnn.sweep import run_sweep, spec_from_dict


def test_plot_kinds_png_pdf(tmp_path, capsys):
    spec = spec_from_dict(
        {
            "name": "p",
            "grid": {"N": [4, 8], "sigma": [0.0, 0.3], "c": [0.5, 0.8], "seed": {"count": 2}},
            "train": {"dt": 0.02, "steps": 20, "n_log": 5, "spectra_at": [0.0, 0.4], "curvature_checks": 0},
            "theory": {"overlay": "none"},
        }
    )
    store = tmp_path / "p.zarr"
    # chunks of one cell on one device, no curvature checks: the N = 4 programs are test_sweep_run's, the
    # N = 8 ones test_theory_store's (same dt and loss doublings), loaded from the session's compilation cache
    run_sweep(spec, store, chunk_size=2, n_devices=1, quiet=True)
    files = plot_store(
        store,
        tmp_path / "figs",
        kinds=("phase", "curves", "outlier", "spectra", "loss"),
        formats=("png", "pdf"),
    )
    names = {f.name for f in files}
    for stem in (
        "phase_N_sigma",
        "phase_N_c",
        "phase_sigma_c",
        "t_learn_curves",
        "outlier",
        "spectra",
        "loss",
    ):
        assert f"{stem}.png" in names and f"{stem}.pdf" in names, names
    assert all(f.stat().st_size > 1000 for f in files)
    assert main(["plot", str(store), "--out", str(tmp_path / "f2"), "--phase", "sigma,c"]) == 0
    assert (tmp_path / "f2" / "phase_sigma_c.png").exists()
    assert main(["info", str(store)]) == 0
    assert "8 of 8 cells done (complete)" in capsys.readouterr().out
    assert main(["info", str(store), "--verify"]) == 0
    assert "all 8 done cells match" in capsys.readouterr().out
    assert main(["plot", str(tmp_path / "missing.zarr")]) == 2
    # an interrupted store: reported as partial everywhere, figures marked
    import zarr

    g = zarr.open_group(str(store), mode="r+")
    done = g["done"][...]
    done.reshape(-1)[[0, 5]] = False
    g["done"][...] = done
    assert main(["info", str(store)]) == 0
    assert "6 of 8 cells done (partial)" in capsys.readouterr().out
    assert main(["plot", str(store), "--out", str(tmp_path / "f3"), "--kinds", "curves"]) == 0
    assert "partial store: 6 of 8 cells done" in capsys.readouterr().out
    assert main(["compare", str(store)]) == 0
    assert "partial store: 6 of 8 cells done" in capsys.readouterr().out
    assert main(["plot", str(store), "--kinds", "bogus"]) == 2
