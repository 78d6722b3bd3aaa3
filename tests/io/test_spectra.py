"""Reading single point spectra (.msa, .spx) into maxrf.io.spectra.Spectrum."""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import numpy as np
import pytest

from maxrf.errors import MaxrfError, MissingFileError, SpectrumFormatError
from maxrf.io.spectra import Spectrum, read_spectrum

DATA = Path(__file__).resolve().parents[1] / "data" / "spectra"  # vendored, public domain
REAL = sorted(DATA.glob("*.msa"))
assert len(REAL) == 10, f"the real .msa spectra are missing from {DATA}"


@pytest.mark.parametrize("path", REAL, ids=[p.stem for p in REAL])
def test_real_msa(path):
    s = read_spectrum(path)
    assert isinstance(s, Spectrum)
    assert s.counts.shape == (4096,) and s.counts.dtype == np.float64
    assert s.counts.flags.c_contiguous
    gain, offset = s.header_calibration
    assert gain == pytest.approx(0.009999, rel=1e-6)
    assert offset == pytest.approx(-0.9553045, abs=1e-7)
    assert s.energies_keV is not None
    assert s.energies_keV[0] == pytest.approx(offset)
    assert s.energies_keV[-1] == pytest.approx(offset + 4095 * gain)
    assert s.live_time_s > 100 and s.real_time_s >= s.live_time_s
    assert s.tube_kv == 50.0
    assert s.tube_current_uA == 50_000.0
    assert s.anode == "Rh"
    assert s.metadata["sources"]["tube_kv"] == "title"
    assert s.metadata["format"] == "msa"
    assert s.path == path
    assert s.counts.sum() > 1e5


def _msa(tmp_path: Path, name: str, header: str, values: str) -> Path:
    p = tmp_path / name
    p.write_text(
        "#FORMAT      : EMSA/MAS SPECTRAL DATA FILE\n#VERSION     : 1.0\n"
        f"#TITLE       : test\n{header}#SPECTRUM    : \n{values}\n#ENDOFDATA   : \n",
        encoding="latin-1",
    )
    return p


def test_msa_in_eV_is_normalised_to_keV(tmp_path):
    values = ", ".join(str(v) for v in range(8))
    p = _msa(
        tmp_path,
        "ev.msa",
        "#NPOINTS     : 8\n#NCOLUMNS    : 1\n#XUNITS      : eV\n#XPERCHAN    : 10.0\n"
        "#OFFSET      : -950.0\n#DATATYPE    : Y\n#BEAMKV   -kV: 40.0\n#LIVETIME  -s: 2.5\n",
        values,
    )
    s = read_spectrum(p)
    assert s.header_calibration == pytest.approx((0.010, -0.950))
    assert s.energies_keV[1] == pytest.approx(-0.940)
    assert s.tube_kv == 40.0 and s.metadata["sources"]["tube_kv"] == "BEAMKV"
    assert s.live_time_s == 2.5 and s.real_time_s is None
    np.testing.assert_array_equal(s.counts, np.arange(8.0))


def test_msa_without_calibration(tmp_path):
    p = _msa(
        tmp_path,
        "nocal.msa",
        "#NPOINTS     : 4\n#NCOLUMNS    : 1\n#DATATYPE    : Y\n",
        "1, 2, 3, 4",
    )
    s = read_spectrum(p)
    assert s.header_calibration is None and s.energies_keV is None
    assert s.counts.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert s.tube_kv is None and s.anode is None


@pytest.mark.parametrize(
    "name, content, expected_error",
    [
        ("garbage.msa", b"\x00\x01garbage\xff\xfe\x00" * 50, SpectrumFormatError),
        ("empty.msa", b"", SpectrumFormatError),
        ("text.msa", b"hello world\nthis is not a spectrum\n", SpectrumFormatError),
        (
            "nodata.msa",
            b"#FORMAT : EMSA/MAS\n#NPOINTS : 3\n#SPECTRUM :\n1,2,3\n",
            SpectrumFormatError,
        ),
        ("blank_line.msa", b"#FORMAT : EMSA/MAS\n\n#NPOINTS : 3\n", SpectrumFormatError),
        ("garbage.spx", b"\x00\x01garbage\xff" * 30, SpectrumFormatError),
        ("bad.spx", b"<?xml version='1.0'?><TRTSpectrum></TRTSpectrum>", SpectrumFormatError),
        ("spectrum.xyz", b"1 2 3", SpectrumFormatError),
    ],
)
def test_bad_files_raise_project_errors_naming_the_file(tmp_path, name, content, expected_error):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(expected_error) as info:
        read_spectrum(p)
    assert str(p) in str(info.value)
    assert isinstance(info.value, MaxrfError)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(MissingFileError) as info:
        read_spectrum(tmp_path / "nope.msa")
    assert "nope.msa" in str(info.value)
    with pytest.raises(SpectrumFormatError, match="folder"):
        read_spectrum(tmp_path)


# ------------------------------------------------------------------------------- spx


def _spx(tmp_path: Path, counts: np.ndarray) -> Path:
    """A minimal Bruker .spx (XML) with the parts RosettaSciIO and maxrf read."""
    layers = base64.b64encode(zlib.compress(b"<DetLayers><Layer0 Atom='4' Thickness='8'/></DetLayers>"))
    xml = f"""<?xml version="1.0" encoding="WINDOWS-1252" standalone="yes"?>
<TRTSpectrum>
 <ClassInstance Type="TRTSpectrum" Name="Point 1">
  <TRTHeaderedClass>
   <ClassInstance Type="TRTSpectrumHardwareHeader">
    <RealTime>12500</RealTime><LifeTime>10000</LifeTime><Amplification>40000</Amplification>
   </ClassInstance>
   <ClassInstance Type="TRTDetectorHeader">
    <Type>XFlash 430</Type><DetLayers>{layers.decode()}</DetLayers>
   </ClassInstance>
   <ClassInstance Type="TRTXrfHeader">
    <Voltage>50</Voltage><Current>599</Current><Anode>45</Anode>
    <ExcitationAngle>50</ExcitationAngle>
   </ClassInstance>
  </TRTHeaderedClass>
  <ClassInstance Type="TRTSpectrumHeader">
   <Date>19.11.2019</Date><Time>11:39:00</Time><ChannelCount>{counts.size}</ChannelCount>
   <CalibAbs>-0.9553</CalibAbs><CalibLin>0.01</CalibLin>
  </ClassInstance>
  <Channels>{",".join(str(int(c)) for c in counts)}</Channels>
 </ClassInstance>
</TRTSpectrum>
"""
    p = tmp_path / "point.spx"
    p.write_bytes(xml.encode("cp1252"))
    return p


def test_spx(tmp_path):
    counts = np.arange(64) % 7
    s = read_spectrum(_spx(tmp_path, counts))
    np.testing.assert_array_equal(s.counts, counts.astype(float))
    assert s.header_calibration == pytest.approx((0.01, -0.9553))
    assert s.live_time_s == pytest.approx(10.0) and s.real_time_s == pytest.approx(12.5)
    assert s.tube_kv == 50 and s.tube_current_uA == 599 and s.anode == "Rh"
    assert s.title == "Point 1"
    assert s.metadata["format"] == "spx"
