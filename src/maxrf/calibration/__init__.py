"""Energy calibration: channel numbers -> keV, from the spectra themselves or by hand.

A Bruker M6 ``.rpl`` carries no energy calibration. :func:`auto_calibrate` finds the
linear calibration ``E(channel) = offset_keV + gain_keV * channel`` from the peaks of a
sum (and optionally max) spectrum; :func:`manual_calibration` and
:func:`range_calibration` set it by hand and override it (:func:`calibrate` dispatches).

Algorithm of :func:`auto_calibrate`
-----------------------------------
1. **Peaks.** In each spectrum (sum, and max when given): SNIP baseline, noise scale,
   significant peaks, Gaussian centres and widths (:mod:`maxrf.peaks`). A strong peak cut
   by the start of the axis (the zero peak of an axis starting at 0 keV) is fitted on its
   visible flank; a peak narrower than its fit window whose fit failed (a zero peak among
   broad scatter peaks) is refitted in a window of its own width. A peak is too narrow for
   a line only when both its fitted width and its width at half prominence are.
2. **Reference lines** (:mod:`maxrf.physics`): the zero (noise) peak at 0 keV; the anode's
   lines as the Rayleigh scatter shows them; a line whose Compton peak half overlaps it
   (W L, Cr K, Cu K at usual angles) is matched as that blend (kind ``'scatter'``: at the
   middle of the places its maximum takes over plausible angles and matrices, with that
   spread as extra tolerance); the Si escape peaks of the tube lines that lose at least
   0.15 % to the escape (Cr K, Cu K-alpha; kind ``'escape'``: they choose the hypothesis,
   never enter the precise fit); the K and L line groups of elements common in artworks
   and standards. Lines of one group (K-alpha1,2...) within a detector FWHM of the group's
   first line merge into one intensity-weighted line (the tube's lines chained, each
   within a FWHM of the next, as their blends are fitted). The tube's K-beta2 (3 % of Rh,
   Mo, Ag K lines) is a line of its own, so that its peak is not read as another
   element's (Rh K-beta2 on Cd K-alpha), but too weak to anchor the axis.
3. **Hypotheses.** Every pair of the strongest peaks matched to every pair of anchor lines
   (zero, anode lines, element K-alpha / L-alpha) gives a gain and an offset within
   ``gain_range`` and ``offset_range``. Widths must be possible for the line they are put
   on (silicon's Fano limit, a poor detector's FWHM): the narrow zero peak cannot pose as
   a fluorescence line, nor the broad Compton peak as a Rayleigh line.
4. **Scores.** Each hypothesis is refined by robust weighted least squares on the peaks it
   puts near a line. A match earns ``sqrt(significance)`` times a *verification*: how well
   the other matches predict it (leave-one-out residual, relative to the match tolerance),
   so two arbitrary peaks fitted exactly by two lines earn nothing. Chemistry: a K-beta
   (L-beta...) line counts only with its stronger K-alpha (L-alpha); a strong main line
   whose companion is missing is refuted; the same holds for the tube's lines of its
   second family (a K anode's L-beta only with its L-alpha). Physics: peak widths must follow one detector
   resolution growing with energy at the Fano rate (judged only on lines spanning 2 keV
   beside the zero peak: one element's lines may sit on a filter's hump); a strong peak as narrow as the
   electronic noise is a verified zero peak (judged on the resolution its width implies, at
   most 1.2 times that of two or more lines, any plausible detector's with fewer: one
   line's width can run a sixth low). The whole spectrum counts: strong narrow peaks (not narrower
   than any line can be: noise) a hypothesis leaves unexplained (no matched line or its
   companions, no anode line or its Compton side, no escape or sum peak) cost half their
   weight, peaks at negative energies or above the tube voltage double; leaving the
   strongest line unexplained costs four fifths of the score. A strong line whose Si escape
   peak is missing where the hypothesis puts it is refuted; counts below the zero peak (at
   < -0.3 keV) refute the offset, and offsets outside ``offset_range`` (default -2..+1 keV)
   are dropped, refined or not. The anode's two lines with their Compton partners at one
   scattering angle are verified even as a two-peak fit. The anode's main line (or blend)
   earns a bonus when found with its broad Compton partner below it and its K-beta above;
   when some hypotheses find that pattern, the others are dropped unless far better, or
   better and leaving at most half the unexplained weight (a sample's lines can hide the
   anode's).
5. **Refinement.** The winner's matched peaks are re-fitted with every line component of
   the elements present in their window (K-alpha1/2, Rh L-alpha with its L-beta shoulder;
   the tube's K-beta2 beside K-beta at its tabulated intensity, not an amplitude of its own),
   widths from the detector model and a quadratic background (the Rayleigh peak sits on the
   Compton tail). Weighted least squares on those centres (zero peak, anode lines,
   peaks of at least 30 sigma, and 10-30 sigma peaks of a line family (K, L) with two such lines
   when at least two others fix the axis), with outlier rejection, gives gain and offset; each peak's
   residual is reported. The anode's free K lines are weighed with the systematic their
   centres are measured to on the real blanks (3 eV K-alpha, 8 eV K-beta), not the wider
   tolerance that matches them before the axis is known. A window fit that stops within 5 %
   of its bound has run into it and measures nothing. A scatter blend is fitted with its
   Rayleigh components and their Compton partners (free shift, angle, Doppler broadening, width factor;
   :mod:`~maxrf.calibration.scatter_fit`): the Rayleigh line's centre enters the fit,
   weighed with 4 eV beside its error (what those fits need at the true axis). With
   three or more blends (a W tube's L lines) the median of their angles, fitted free on
   the first pass, is a prior (3 degrees) on each blend's angle on the second: one
   geometry places every Compton peak, and a weak blend's own angle trades against its
   line's place. So
   is a tube K line whose Compton peak (placed by the angle of step 6, measured on the
   axis being refined) lies within 4 FWHM of it: the window fit's polynomial cannot follow
   that peak's flank. Sample lines whose peaks reach into such a window are fitted in it.
   Of the four best solutions, the best-scoring one the checks (step 7) pass wins, else
   the best-scoring one they do not fail (the best when all fail); a solution leaving
   more of the spectrum unexplained than the best is not judged, unless a critical check
   refutes the best, and then taken only when it passes every check. The chosen
   solution's peaks are then matched to lines again on its precise axis and refitted:
   lines its rough axis left out of tolerance (a zero peak, a blend) enter, and the
   polished axis is taken when it moves at most 50 eV over 2-20 keV with a verdict no
   worse (:func:`~maxrf.calibration.choice._polished`).
6. **Scattering angle.** The Compton peak of the anode's main line is located between its
   180-degree limit and the Rayleigh peak; :func:`maxrf.physics.detector_angle` turns its
   energy into the scattering angle. The Compton peak never enters the gain (its energy
   depends on the unknown angle and it is broad and asymmetric).

7. **Verdict.** Every result carries ``quality`` (``'good'``, ``'doubtful'``, ``'failed'``)
   and its named ``checks`` (:mod:`~maxrf.calibration.quality`,
   :mod:`~maxrf.calibration.verdict`): residuals; lines *not* in the fit (anode K-beta,
   element companions, leave-one-out) at their places, no element's K-beta peak more
   than three times its line ratio to its K-alpha's where no other line can hold the
   rest (one shell emits both: a filter keeps their ratio); the anode's main scatter line
   there and its own peak stronger than its companion's; the zero peak at 0 keV (a peak
   where a strong line's Si escape falls is not taken for it); nothing at negative
   energies or above the tube voltage; widths on one resolution law FWHM^2 = a + b E; a
   possible Compton angle; the 2-20 keV axis pinned by the fit; no strong peak
   unexplained and the strongest line peaks on their lines; not half the strong lines far
   narrower than the Fano limit; the Rayleigh lines inside soft anode blends where the
   axis puts them (``anode scatter``; refuting only when off at the lines' resolution and
   at the zero peak's, and when the blend does not show its Rayleigh line at its place as
   well, a likelihood ratio within 5 sigma; a blend the model does not describe measures
   nothing; nor when the main line is gone, a common primary filter's K edge lies within
   1 keV below it and every other check passes: a filter took it, and the axis is
   doubtful); no other element's main line near a fitted line that would fit
   as well and move the axis by more than 20 eV (``alias``); no strong fitted line far
   broader than the zero peak's noise and the Fano law allow, as a Compton peak is, nor
   all the tube's Rayleigh lines on such peaks (``broad lines``); no sample element whose
   line pair has the anode's energy ratio (Co K for a Cu tube, Pd K for Rh) that, read
   where the fit reads the anode's lines, fits as well and puts the anode's own scatter
   on a strong peak the fit leaves out, and no fitted element line that, read as the
   tube's own line of the same role (Cd L as a Ag tube's L), fits as well while the fit
   finds no peak at the tube's line (``rival identity``; a rival reading replaces the
   fit when its verdict is better, or as good with no more checks failed while it
   explains more); agreement within 20 eV with
   the file header's calibration when there is one. The axis uncertainty (``coverage``,
   at most 12.5 eV) propagates the measured uncertainties of the peak centres (fit error and
   :func:`~maxrf.calibration.precise.centre_sys_keV` by line class, a steep background's
   bias for fluorescence lines, a peak's residual when larger) through the fit's
   weights; a zero peak cut by the start of the axis does not alone pin its low end.
   ``good`` needs every check passed, an independent confirmation (a
   prediction uncertain by at most 30 eV) and three peaks in the fit (or two, the zero
   peak or the anode's lines, with the anode's Ka/Kb spacing confirmed).
   A line under another element's stronger fitted line (within a FWHM) is not probed:
   its window fit measures the blend. Two lines of one element closer than two detector
   sigmas explain any peak between them (Zr L-alpha and L-beta make one peak).
   :func:`~maxrf.calibration.verdict.assess_calibration` judges any calibration.

Limits: with a single element, no zero peak on the axis and a weak or Compton-blended
anode line (W, Cr, Cu anodes; or an axis starting above 0 keV), element lines can be
confused with their neighbours in the periodic table (K lines scale with Z), and a blank
whose only lines are the anode's Ka and Kb pins 2-20 keV only roughly; the verdict then
says ``doubtful``; give a manual calibration or an energy range. When no solution puts
three peaks on lines, the best two-peak solution is returned with its verdict (never
``good`` without confirmation) rather than an error.

What ``plot_calibration`` needs: a :class:`Calibration` (``peaks`` carries name, channel,
reference energy, residual and whether each peak was used) and the spectrum.

Modules
-------
One module per part of the work, each importing only from those listed before it:
``results`` (:class:`Calibration`, :class:`CalibrationPeak`), ``manual`` (manual, range
and header calibrations, :func:`parse_manual`, :func:`parse_range`), ``references``
(reference lines, step 2), ``observe`` (observed peaks, step 1), ``match`` (matching
peaks to lines), ``explain`` (what a hypothesis leaves unexplained, missing companions,
the zero peak's width), ``medium`` (the vectorised first scoring, step 3),
``hypotheses`` (candidate calibrations and their scores, steps 3-4), ``scatter_fit`` (the
Rayleigh line inside a Compton blend), ``precise`` (precise centres and the Compton peak,
steps 5-6), ``companions`` (a main line's missing companions, or a K-beta far stronger than its
K-alpha allows with no other line there, refute its element),
``quality``, ``scatter_check`` (the ``anode scatter`` check), ``consistency``
(whether few peaks pin the axis uniquely), ``rivals`` (another element's lines read as
the anode's) and ``verdict`` (the checks and the verdict, step 7), ``auto``
(:func:`auto_calibrate`, :func:`calibrate`) and ``datastack`` (:func:`calibrate_datastack`,
:func:`calibrate_spectrum`). Their public names are importable from here.
"""

from __future__ import annotations

# the public names of the submodules; ``__all__`` lists the package's API. Private
# helpers are imported from the module that defines them.
from maxrf.calibration.auto import (  # noqa: F401
    auto_calibrate,
    calibrate,
    refine_calibration,
)
from maxrf.calibration.datastack import (  # noqa: F401
    calibrate_datastack,
    calibrate_spectrum,
)
from maxrf.calibration.hypotheses import (  # noqa: F401
    GAIN_RANGE,
    OFFSET_RANGE,
)
from maxrf.calibration.manual import (  # noqa: F401
    header_calibration,
    manual_calibration,
    parse_manual,
    parse_range,
    range_calibration,
)
from maxrf.calibration.references import (  # noqa: F401
    K_ELEMENTS,
    L_ELEMENTS,
)
from maxrf.calibration.results import (  # noqa: F401
    Calibration,
    CalibrationPeak,
)
from maxrf.calibration.verdict import assess_calibration
from maxrf.physics import compton_shift, detector_angle

__all__ = [
    "assess_calibration",
    "Calibration",
    "CalibrationPeak",
    "auto_calibrate",
    "calibrate",
    "compton_shift",
    "detector_angle",
    "header_calibration",
    "manual_calibration",
    "parse_manual",
    "parse_range",
    "range_calibration",
    "refine_calibration",
]
