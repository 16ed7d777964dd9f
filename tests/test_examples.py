"""The examples run as their docstrings say (the README's `make demo` runs the first)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_simulated_cluster_demo_shows_every_expected_event() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "simulated_cluster.py")],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "-- faro is ready --" in lines
    assert any(line.startswith("DELETED  v1/configmaps        demo/settings") for line in lines)
    assert any("apps/v1/deployments  demo/web" in line and "(existed before start)" in line
               for line in lines)
    assert not any("demo/other" in line for line in lines)  # filtered by its label
