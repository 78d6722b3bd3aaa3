"""Element identification: which elements (and which instrument artefacts) explain the peaks.

A hotmax spectrum is a puzzle: its peaks are the characteristic lines of one or more
elements plus instrument artefacts (anode lines scattered elastically -- Rayleigh -- and
inelastically -- Compton --, Si escape peaks, pile-up sum peaks, argon of the air, the zero
peak). This module gives the pieces of the puzzle (:func:`element_pattern`,
:func:`instrument_pattern`) and solves it automatically (:func:`identify`), with the
evidence a user can check.

Algorithm of :func:`identify` (one spectrum)
--------------------------------------------
1. **Preparation.** Baseline (SNIP of :mod:`maxrf.peaks`, lifted to the mean level of the
   noise by :func:`maxrf.peaks.restore_level`) and Poisson noise envelope (3 sigma), or the
   ones stored with the hotmax atlas; observed peaks = local maxima 4 sigma above the
   baseline and above the envelope. Detector resolution ``fwhm_at_6keV`` from the widths of
   the strongest peaks and the zero peak (:func:`estimate_fwhm6`, Fano model of
   :func:`maxrf.physics.fwhm_keV`); scattering angle from the calibration or from the
   Compton peak beside the anode's K-alpha Rayleigh peak (:func:`estimate_theta`). Over an
   atlas both come from the sum of its spectra.
2. **Templates** on the calibrated axis, built from :mod:`maxrf.physics` (lines, relative
   intensities, Gaussian response at the detector resolution, Si escape fractions): the
   instrument -- anode K-alpha and K-beta Rayleigh peaks and their low-energy tail, the
   Compton K peaks (two Doppler widths), each anode L line on its own (their ratios change
   with the sample's absorption edges), argon -- and every *candidate* element: Z 11..92,
   not the anode, no noble gas or short-lived element, whose strongest line of a family
   lies within 1.5 FWHM of an observed peak (:func:`candidate_elements`). An element is a
   few columns: one per line group (K-alpha, K-beta, the L1, L2, L3 sub-shells, M), one per
   family for its escape peaks and one for its low-energy peak tail. Amplitude ratios of 1
   reproduce :func:`maxrf.physics.element_spectrum` exactly; linear constraints
   ``x_i <= c x_j`` let them move only as far as the model is uncertain (K-beta/K-alpha
   within :data:`FAMILY_SLACK`, or down to :data:`LIGHT_KBETA_MIN` for Z <= 17; L
   sub-shells within :data:`SUBSHELL_SLACK`; families within :data:`FAMILY_SLACK`, except
   that a family below :data:`SOFT_KEV` (absorption), above :data:`HARD_KEV` (detector
   efficiency) or excited with an over-voltage below :data:`MIN_OVERVOLTAGE` may fade
   away; escape peaks up to nominal, tails up to :data:`TAIL_MAX`). So Pb M lines cannot
   stand in for S K-alpha without Pb L lines, while the weak, far K lines of Sn at 50 kV
   do not veto the Sn L lines.
3. **Fit.** Weighted non-negative least squares of the baseline-subtracted spectrum (the
   Gram matrix of all templates is formed once per weighting; every sub-model is solved on
   it; a violated constraint is made active). Weights ``1 / variance``: Poisson counts plus
   the model's own systematic uncertainty -- :data:`SYSTEMATIC` per line group (a few per
   cent for K lines, more for L sub-shells, M lines, escape peaks) and
   :data:`DYNAMIC_RANGE` of the largest modelled peak up to 1 keV above a channel (the
   low-energy tail and shelf of incomplete charge collection). Real detector artefacts
   near a 10**5-count peak are thus not "explained" by phantom elements.
4. **Instrument first, then forward selection.** Starting from the instrument model, each
   candidate is added in turn; the one with the largest chi-square improvement that
   passes every test of a *present* element (below) is accepted, the weights are updated,
   and the search repeats. A **backward** pass then removes any accepted element whose own
   likelihood-ratio test fails in the final model (an element accepted early may become
   redundant). Sum peaks of the three strongest fitted lines (2 x K-alpha, K-alpha +
   K-beta, cross sums) join the instrument model and the selection runs once more.
5. **Tests** of an element in a model:

   * ``delta_chi2``: chi-square increase when its columns are removed (likelihood-ratio
     statistic; present needs :data:`DCHI2_PRESENT` = 25, i.e. 5 sigma);
   * ``z``: its fitted line counts over their standard error (present: :data:`Z_PRESENT`);
   * lines: each line group is looked for in the residual of the full model with that
     line's own fitted contribution added back -- a Gaussian at the expected energy on a
     local straight background, +-1.5 FWHM. It is *seen* when 3 sigma above zero, at least
     :data:`LINE_RATIO_MIN` of the expected area, above the envelope and not shifted by
     more than :data:`SHIFT_FWHM` FWHM; it is *expected visible* when its fitted area is
     :data:`VISIBLE_Z` standard errors of that local fit. ``line_fraction`` is the share
     of the expected-visible lines seen, each weighted by its expected significance
     (capped at :data:`SIGNIFICANCE_CAP`): a strong line that is missing speaks against the
     element whatever its relative intensity (a weak line seen all the same counts too).
     Present needs :data:`LINE_FRACTION_PRESENT`, its main line (the model's strongest
     rising above the envelope) seen, a line seen where it was expected clearly or two
     lines seen (one weak peak is ambiguous: As K-alpha or Pb L-alpha?), and, for an element
     outside :data:`COMMON_ELEMENTS`, two lines seen (above :data:`SOFT_KEV` when it has
     visible lines there). Lines under the anode's broad K Rayleigh/Compton peaks cannot be
     verified and do not count.

   Overlaps are resolved by these tests, not by rules: Zn is accepted only if Cu alone
   cannot explain 8.6 keV, As under Pb L-alpha only if As K-beta (11.73 keV) and the excess
   at 10.5 keV over what Pb L-l / L-beta / L-gamma imply demand it, Ti under Ba L-alpha only
   if the Ba L pattern cannot account for 4.51 and 4.93 keV, Mn K-beta / Fe K-alpha, Hg /
   Au L lines likewise.
6. **Status.** ``present`` (all tests passed), ``possible`` (``delta_chi2 >=``
   :data:`DCHI2_POSSIBLE`, ``z >=`` :data:`Z_POSSIBLE`, main line seen) or ``absent``.
   The raw score ``line_fraction * z**2 / (z**2 + Z_HALF**2)`` in [0, 1] is mapped into
   its status's band of :data:`CONFIDENCE_BANDS` (:func:`calibrated_confidence`): present
   0.95..1, possible 0.03..0.15, absent 0..0.02 -- bands read off the reliability curve of
   synthetic scans with known truth, so that of the elements given confidence ``p`` a
   fraction close to ``p`` is there, and an absent element never outranks a present one.
   A line is *visible* (its absence counts) only where its expected area stands
   :data:`VISIBLE_Z` standard errors above the local counting noise; a line standing
   :data:`STRONG_Z` standard errors out counts as seen even under the per-channel noise
   envelope (the envelope depends on the channel width). Each element's
   fitted ``counts`` (total area of its lines) and ``relative`` (to the strongest present
   element of the spectrum) are reported; a present element is a **trace** when
   ``relative <`` :data:`TRACE_FRACTION` (1 %): real standards show their impurities
   (Fe in Ni, Hf in Zr...) and unmodelled detector or diffraction peaks at that level.

Instrument peaks are labelled as such and never reported as elements: the anode element
is not a candidate, argon appears only as air. The instrument model holds the anode's
Rayleigh K and L lines and their Compton partners (K and L), Si escape peaks, sum peaks of
every pair of the :data:`N_SUM_LINES` strongest fitted lines, argon and the zero peak. An
observed peak left unexplained by the final model (less than half of its net height
modelled, or a residual above 5 sigma) but lying on an anode Rayleigh or Compton line or
its escape (:func:`instrument_windows`: the Compton windows are as wide as the
Doppler-broadened peak) is labelled with that instrument peak; what is left is listed in
``unexplained_keV`` with its net counts in ``unexplained_counts`` (over an atlas: unless
a line of an element found elsewhere in the scan matches it).

Evidence a user can check: every element's :meth:`ElementResult.line_summary` lists each
line once -- seen, missed (expected visible, not seen) or weak -- with its expected
(fitted) and observed (local fit) net counts, in ``to_dict()``, in
:meth:`Identification.evidence` (printed by ``maxrf identify``) and in the report.

Over a DataStack, every hotmax spectrum is identified on its own; an element is present
if it is present in any spectrum, and its evidence lists the lines and the spectra.

Modules
-------
One module per part of the work, each importing only from those listed before it:
``constants`` (the thresholds and model uncertainties above), ``confidence``
(:func:`calibrated_confidence`), ``patterns`` (element line
patterns, :func:`element_pattern`), ``instrument`` (instrument peaks,
:func:`estimate_theta`, :func:`instrument_pattern`), ``fitting`` (candidates, templates
and the non-negative least squares, steps 2-3), ``results`` (:class:`LineEvidence`,
:class:`ElementResult`, :class:`SpectrumIdentification`, :class:`Identification`),
``context`` (preparation of a spectrum, :func:`estimate_fwhm6`, step 1), ``selection``
(forward / backward selection and the tests, steps 4-5), ``spectrum``
(:func:`identify_spectrum`, statuses and peak labels, step 6) and ``sources``
(:func:`identify` over a DataStack, an atlas or a point spectrum,
:func:`write_identification`). Their public names are importable from here.
"""

from __future__ import annotations

from maxrf.identify.confidence import CONFIDENCE_BANDS, calibrated_confidence

# the public names of the submodules; ``__all__`` lists the package's API. Private
# helpers are imported from the module that defines them.
from maxrf.identify.constants import (  # noqa: F401
    CANDIDATE_WINDOW_FWHM,
    COMMON_ELEMENTS,
    DCHI2_POSSIBLE,
    DCHI2_PRESENT,
    DYNAMIC_RANGE,
    EXCLUDED,
    FAMILY_SLACK,
    HARD_KEV,
    INSTRUMENT_Z,
    LIGHT_KBETA_MIN,
    LINE_FRACTION_PRESENT,
    LINE_RATIO_MIN,
    LINE_Z_MIN,
    MERGE_FWHM,
    MIN_FIT_KEV,
    MIN_OVERVOLTAGE,
    PEAK_SIGMA,
    SHIFT_FWHM,
    SIGNIFICANCE_CAP,
    SOFT_KEV,
    STATUSES,
    SUBSHELL_SLACK,
    SYSTEMATIC,
    TAIL_MAX,
    TRACE_FRACTION,
    VISIBLE_Z,
    WING_ERROR,
    Z_HALF,
    Z_POSSIBLE,
    Z_PRESENT,
)
from maxrf.identify.context import (  # noqa: F401
    estimate_fwhm6,
)
from maxrf.identify.fitting import (  # noqa: F401
    candidate_elements,
)
from maxrf.identify.instrument import (  # noqa: F401
    INSTRUMENT_KINDS,
    InstrumentPattern,
    InstrumentPeak,
    InstrumentWindow,
    estimate_theta,
    instrument_pattern,
    instrument_windows,
    match_instrument,
)
from maxrf.identify.patterns import (  # noqa: F401
    ElementPattern,
    PatternPeak,
    element_pattern,
)
from maxrf.identify.results import (  # noqa: F401
    ElementResult,
    Identification,
    LineEvidence,
    ObservedPeak,
    SpectrumIdentification,
)
from maxrf.identify.sources import (  # noqa: F401
    identify,
    write_identification,
)
from maxrf.identify.spectrum import (  # noqa: F401
    identify_spectrum,
)

__all__ = [
    "CONFIDENCE_BANDS",
    "DCHI2_POSSIBLE",
    "DCHI2_PRESENT",
    "ElementPattern",
    "ElementResult",
    "Identification",
    "InstrumentPattern",
    "InstrumentPeak",
    "InstrumentWindow",
    "LineEvidence",
    "PatternPeak",
    "SpectrumIdentification",
    "TRACE_FRACTION",
    "Z_POSSIBLE",
    "Z_PRESENT",
    "calibrated_confidence",
    "candidate_elements",
    "element_pattern",
    "estimate_fwhm6",
    "estimate_theta",
    "identify",
    "identify_spectrum",
    "instrument_pattern",
    "instrument_windows",
    "match_instrument",
    "write_identification",
]
