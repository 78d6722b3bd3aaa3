"""Peak-slice maps and element maps, all from one pass over the cube.

The seed (maxrf4u) sliced the cube at every peak of the max spectrum and read the whole
cube once per peak (22 peaks = 22 reads of a 1-30 GB file). Here every map -- peak maps,
keV maps, fitted or windowed element maps and the fit residual -- is a
:class:`maxrf.engine.PixelMaps` reduction fed from the same single read of each block
(:func:`compute_maps`).

Peak maps (:func:`get_peakmaps`)
--------------------------------
:func:`get_slices` finds the peaks of the max spectrum (``scipy.signal.find_peaks`` with a
``prominence``) and puts each slice's bases at ``2 x`` the peak width measured at
``rel_height`` on either side of the peak (the seed's rule), as channel indices
``[left, peak, right]``. For a slice ``si .. sk`` (inclusive) with ``d = sk - si`` the peak
map is the seed's formula, kept exactly::

    peak_map = sum(x[si : sk + 1]) / d - (x[si] + x[sk]) / 2

i.e. the slice's sum divided by its width in channels minus the linear baseline through
its two end channels (counts per channel; with ``norm=True`` divided by the map's maximum,
as in the seed). The keV map is the energy of the per-pixel maximum inside the slice.
Slice sums of all ``k`` slices come from one segmented sum per block
(``numpy.add.reduceat`` over the distinct slice boundaries, then a cumulative sum over the
segments), exact in int64 for integer cubes, never a loop of ``k`` reads. keV maps: up to
24 slices an ``argmax`` per slice on the block in memory; beyond, one segmented maximum of
integer keys ``value * 2**b + (last - channel)`` (the first maximum wins, as ``argmax``).
Cost on the 1 GiB benchmark cube: 21 slices in about the time of a plain numpy read of
the cube (12x faster than the seed's 21 reads); 618 slices (prominence 0.5 on an
unsmoothed cube) about 11 plain reads (the seed would need 618).

Element maps (:func:`element_maps`)
-----------------------------------
``method='fit'`` (default): every pixel spectrum ``x`` (channels in ``energy_range``) is
fitted by weighted linear least squares as ``T.T @ a`` with a *fixed* design ``T``:

* one template per element, :func:`maxrf.physics.element_spectrum` (all its lines at
  their relative intensities, Gaussians at the detector resolution, Si escape peaks), of
  unit total area -- so the amplitude is the element's counts per pixel (total area of its
  lines);
* instrument templates: Rayleigh and Compton scatter of the anode lines
  (:func:`maxrf.physics.scatter_spectrum`, with their escape peaks), the zero (noise) peak
  when it reaches the range, and one pile-up template (sum peaks of the main lines of the
  strongest elements, weighted by their mean-spectrum amplitudes);
* the continuum: :func:`maxrf.physics.continuum_spectrum` multiplied by Legendre
  polynomials of order ``0 .. continuum_order`` over the range (a smooth, physically
  shaped background with a slowly varying correction).

The fitted range is by default 1 keV up to 1.5 keV above the highest line of the elements
and the anode (at most ``tube_kv``): channels above hold only continuum.

Weights are ``w = 1 / max(mean spectrum, 1)`` (Poisson variance of the average pixel),
the same for every pixel, so the least-squares solution is one float32 matrix product per
block of pixels, ``B = (sqrt(w) * X) @ D`` (the right-hand sides of the normal equations,
``D`` the column-scaled weighted design), then ``A = B @ inv(G)`` in float64 with the
``m x m`` Gram matrix inverted once. The reduced chi-square
``sum(w * (x - model)**2) / (channels - m) = (sum(w x**2) - 2 a.b + a.G.a) / dof`` comes
from the same products, without forming the model spectra (its float32 rounding is about
1e-4 relative).

Negative amplitudes: the element, scatter, zero-peak and pile-up amplitudes are kept
non-negative (the continuum coefficients are free) by an active-set NNLS solved on the
``m x m`` normal equations -- ``b`` is already known, so the refinement never touches the
spectra again. Only pixels whose unconstrained solution has a negative constrained
amplitude are refined, all of them together: each round drops the negative columns
(all at once, where Lawson-Hanson would step back to the boundary), re-solves the
subproblems grouped by their pattern of free columns (one cached ``m x m`` inverse per
distinct pattern, applied to all the pixels that share it as one matrix product), and
adds back, one per pixel, the fixed column whose gradient says it should be positive,
until every pixel is feasible and satisfies the KKT conditions (at most ``2 m + 10``
rounds, then remaining negatives are clipped). On the synthetic scans it converges in
at most 3 rounds and equals a bounded-variable least-squares solution
(``scipy.optimize.lsq_linear``) to 1e-14; on the 1 GiB benchmark cube 90 % of the pixels
are refined and the refinement adds about 0.3 s (30 % of the unconstrained fit; see
``ElementMaps.refined_fraction`` and ``benchmarks/bench_maps.py``).

The detector resolution ``fwhm_at_6keV`` (FWHM at 5.9 keV) is estimated from the mean
spectrum when not given: widths of its strongest isolated peaks between 2 and 15 keV
(``scipy.signal.peak_widths`` at half height, converted with the Fano model), refined by a
1-D search of the weighted fit residual of the mean spectrum; the scattering angle (for the
Compton template) comes from the ``calibration`` layer when recorded there, else from a
1-D search of the same residual.

``method='window'``: each element's strongest *free* line group is integrated over a
window of +-1 FWHM with the seed's baseline rule (the same linear functional as a peak
map) and divided by the response of that functional to the element's own template, so
the result is again an estimate of the element's total counts per pixel. A line group is
free when no line of another requested element (or of the anode's Rayleigh/Compton
scatter) with at least 5 % of that element's strongest line lies within 2 FWHM of it. The
strongest free group (among the groups with at least 10 % of the element's strongest
group) is taken; when no group is free the least-interfered one is (interference = the
other lines' relative intensities times the fraction of their Gaussian inside the window,
relative to the element's own in-window intensity). Examples: As with Pb uses As K-beta
(As K-alpha sits on Pb L-alpha), Pb with As uses Pb L-beta, S with Pb has no free group
(S K-alpha on Pb M-alpha, S K-beta on Pb M-beta) and takes the least interfered, with
cross-talk -- use ``method='fit'`` there.
"""

from __future__ import annotations

from maxrf.maps.compute import band_images, compute_maps, element_maps, get_peakmaps, sum_image
from maxrf.maps.display import get_noise_level, histeq
from maxrf.maps.fit import ElementFit, FitModel
from maxrf.maps.layers import identified_elements, write_element_maps, write_peak_maps
from maxrf.maps.model import estimate_fwhm, fit_model
from maxrf.maps.plans import ELEMENT_METHODS
from maxrf.maps.results import ElementMaps, MapsResult, PeakMaps
from maxrf.maps.slices import AUTO_SIGMA, PeakSliceMaps, get_slices, peak_labels, seed_peak_map
from maxrf.maps.sums import ChannelWindows, SumImage, WindowImages
from maxrf.maps.windows import window_lines

__all__ = [
    "AUTO_SIGMA",
    "ChannelWindows",
    "ELEMENT_METHODS",
    "ElementFit",
    "ElementMaps",
    "FitModel",
    "MapsResult",
    "PeakMaps",
    "PeakSliceMaps",
    "SumImage",
    "WindowImages",
    "band_images",
    "compute_maps",
    "element_maps",
    "estimate_fwhm",
    "fit_model",
    "get_noise_level",
    "get_peakmaps",
    "get_slices",
    "histeq",
    "identified_elements",
    "peak_labels",
    "sum_image",
    "window_lines",
    "write_element_maps",
    "seed_peak_map",
    "write_peak_maps",
]
