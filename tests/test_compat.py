"""The seed's call shapes gathered in maxrf.compat keep working beside maxrf's own."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from maxrf.compat import PairResult, SeedArray, renamed_keyword, seed_array


def test_seed_array_is_an_array_that_answers_a_call():
    a = seed_array(np.array([1.0, 2.0]))
    assert isinstance(a, SeedArray) and a() is not a
    np.testing.assert_array_equal(a(), [1.0, 2.0])
    assert a.sum() == 3.0 and not a.flags.writeable


def test_pair_result_unpacks_as_the_seed_tuple():
    class Found(PairResult):
        _pair = ("atlas", "table")

        def __init__(self):
            self.atlas, self.table, self.other = "A", {"label": [1]}, 3

    atlas, table = Found()
    assert (atlas, table) == ("A", {"label": [1]})
    assert Found()[1] == {"label": [1]} and len(Found()) == 2


def test_renamed_keyword_warns_only_when_the_old_one_is_given():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_keyword("write", "store", None, True, "identify") is True
    with pytest.warns(DeprecationWarning, match="write= is deprecated, use store="):
        assert renamed_keyword("write", "store", False, True, "identify") is False


def test_identify_write_keyword_still_works(tmp_path):
    from maxrf.identify import identify
    from maxrf.synth import synth_spectrum

    energies = 0.01 * np.arange(2048)
    counts = synth_spectrum({"Fe": 2e5, "Cu": 1e5}, energies, anode="Rh", tube_kv=40.0, rng=1)
    with pytest.warns(DeprecationWarning, match="store="):
        result = identify((counts, energies), write=False)
    assert "Fe" in result.present


def test_find_speckles_result_unpacks_and_names_its_parts():
    from maxrf.speckles import SpeckleResult

    found = SpeckleResult(atlas="atlas", table={"label": np.arange(2)}, element="Fe", stored=False)
    atlas, table = found
    assert atlas == "atlas" and table is found.table and found.element == "Fe"


def test_hotmax_atlas_keeps_the_seed_plot_methods_without_importing_matplotlib():
    import subprocess
    import sys

    code = ("import sys, maxrf.hotmax as h\n"
            "assert callable(h.HotmaxAtlas.plot_spectra) and callable(h.HotmaxAtlas.plot_spectrum)\n"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
