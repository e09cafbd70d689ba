"""The example scripts run as they are, at small size (the tour asserts its own theory comparison)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tour_runs(tmp_path):
    env = {**os.environ, "TOUR_N": "16", "TOUR_OUT": str(tmp_path), "OPENBLAS_NUM_THREADS": "1"}
    p = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tour.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "simulation vs its own 8-ODE" in p.stdout and (tmp_path / "tour.png").exists()
