"""The public names: seed (maxrf4u) names and clean ones resolve, whatever is imported first."""

from __future__ import annotations

import subprocess
import sys

import maxrf

SEED_NAMES = ["DataStack", "HotmaxAtlas", "get_slices", "get_peakmaps", "plot_peak_slices",
              "plot_puzzle", "plot_ptrn", "get_noise_level", "SpeckleAtlas", "multi_plot", "histeq"]


def test_every_export_resolves():
    for name in maxrf.__all__:
        assert getattr(maxrf, name) is not None, name


def test_seed_names_present():
    assert set(SEED_NAMES) <= set(maxrf.__all__)


def test_aliases_do_not_shadow_modules():
    code = ("import maxrf.convert, maxrf\n"
            "assert callable(maxrf.convert_scan)\n"
            "assert hasattr(maxrf.convert, 'ScanSource')\n"
            "import maxrf.identify\n"
            "assert callable(maxrf.identify_elements)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
