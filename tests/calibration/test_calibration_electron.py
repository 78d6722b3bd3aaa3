"""Real spectra of a kind the automatic calibration was not built for: the two Bruker
SEM-EDS hypermaps of ``../shared/data/bcf`` (electron excitation at 20 kV, GPL test files
of rosettasciio, read from there), whose headers hold the instrument's axis. No tube
scattered into them, so whatever anode the user names, a wrong axis must not be called
good: the verdict, not luck, is under test."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from rsciio.bruker import file_reader

from maxrf.calibration import auto_calibrate

ROOT = Path(__file__).resolve().parents[2]
BCF = ROOT.parent / "shared" / "data" / "bcf"  # shared/ lies beside the clone; missing files fail
FILES = ["16x16_12bit_packed_8bit.bcf", "P45_the_default_job.bcf"]


def _sum_spectrum(path: Path) -> tuple[np.ndarray, float, float]:
    """The hypermap's sum spectrum and its header axis (gain, offset in keV), as
    rosettasciio reads them."""
    (item,) = [d for d in file_reader(str(path)) if d["data"].ndim == 3]
    axis = item["axes"][2]
    counts = np.asarray(item["data"], dtype=np.float64)
    return counts.reshape(-1, counts.shape[-1]).sum(axis=0), axis["scale"], axis["offset"]


# every anode family (K lines of Rh, soft K of Cu, L of W) on one map; the larger map,
# where a W tube's search takes 10 s, with the two K anodes
@pytest.mark.parametrize(("name", "anode"), [(FILES[0], "Rh"), (FILES[0], "W"), (FILES[0], "Cu"),
                                             (FILES[1], "Rh"), (FILES[1], "Cu")])
def test_an_electron_excited_spectrum_is_not_called_good_on_a_wrong_axis(name, anode):
    path = BCF / name
    assert path.is_file(), f"missing test file {path}"
    counts, gain, offset = _sum_spectrum(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = auto_calibrate(counts, anode=anode, tube_kv=20.0)
    ch = np.arange(counts.size)
    truth = offset + gain * ch
    inside = (truth >= 2.0) & (truth <= 20.0)
    err_eV = 1e3 * np.abs(cal.offset_keV + cal.gain_keV * ch - truth)[inside].max()
    if err_eV > 30.0:
        assert cal.quality != "good", f"{name} read with a {anode} tube: {err_eV:.0f} eV off, good"
    if cal.quality != "good":  # a verdict short of good names what failed
        assert any(not c["passed"] for c in cal.checks)
