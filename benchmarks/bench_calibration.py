"""Calibration robustness: hard synthetic spectra on seeds never used while developing,
and the real spectra of tests/data/spectra against their instruments' calibrations.

Development used :func:`maxrf.synth_spectra.calibration_case` seeds 0-199, 20000-20999,
70000-70999 and 80000-80999, the test suite seeds 5000-5023 (and 5000-5199 drawn
line-rich), 5100-5111, 5200-5223 and 5300-5344, earlier runs of this benchmark seeds
10000-10299 to 90000-90299 (a few of which were looked at), and the ranges 100000-100299,
110000-110299, 200000-200299, 210000-210299, 400000-400299, 500000-500599, 600000-600299,
610000-610599 and 900000-900599 (800000-800299 and 810000-810299, 820000-820299,
830000-830299, 840000-840299, 850000-850299, 860000-860299, 870000-870299, 880000-880299,
890000-890299 and 910000-910299 to 1090000-1090299 and 1110000-1110299 to 1300000-1300299
were held out once each; 990000-990299 and 1000000-1030299 were then used for
development);
this benchmark measures the seeds of ``MAXRF_BENCH_SEEDS`` (``FIRST-LAST``, default 1300000-1300299,
never looked at while developing) and records them with the development seeds. Per case: the largest
|E_auto - E_true| over 2-20 keV, the verdict, and whether a result more than 30 eV off was
called ``good`` (a silent failure); and the same fit started from the true axis
(:func:`~maxrf.calibration.refine_calibration`), which splits the misses into a wrong
choice of line identities and the peaks' own precision; and the Cramér-Rao bound of the
axis from the case's own model (:meth:`~maxrf.synth_spectra.SpectrumCase.axis_bound`):
the probability that any unbiased calibration lands within 10 eV, whose mean over the
cases is the rate the data allow at best; and the same bound for a method that does not
take from tables what real spectra do not give it (``robust``: the tube lines' ratios, the
Fano factor, the Compton peak's broadening and place).
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from pathlib import Path

import numpy as np

from maxrf.calibration import auto_calibrate, refine_calibration
from maxrf.errors import CalibrationError
from maxrf.io.spectra import read_spectrum
from maxrf.synth_spectra import calibration_case

#: the measured seeds (``FIRST-LAST``) unless ``MAXRF_BENCH_SEEDS`` says otherwise
SEEDS = "1300000-1300299"
DEV_SEEDS = (
    "0-199 and 20000-20999 (development), 5000-5023 and 5100-5111 (test suite), "
    "10000-10299 (earlier benchmark, partly looked at), 30000-30299 (earlier benchmark; "
    "30019, 30057 and 30297 looked at), 40000-40299 (earlier benchmark; 40028, 40030, "
    "40143 and 40262 looked at), 50000-50299 (earlier benchmark, measured once), 70000-70999 "
    "(development of the candidate choice; 70000-70299 measured repeatedly), 80000-80999 "
    "(development of precision and verdict; 80000-80299 measured with this benchmark), "
    "60000-60299 (held out in the round of 3 December, measured once; 60171 looked at after), "
    "100000-100299 and 200000-200299 (development of the whole-spectrum score and of the "
    "centre uncertainties), 110000-110299 and 210000-210299 (their checks, measured but not "
    "looked at case by case), 90000-90299 (held out in the round of 3 December evening, "
    "measured once; 90003 and 90076 looked at after), 400000-400299, 500000-500599, "
    "600000-600299 and 610000-610599 (development of the paired lines, the continuum end and "
    "the rival identities of the anode lines, night of 3 December), 300000-300299 (held out "
    "that night, measured once; 300182 looked at after), 900000-900599 (development of the "
    "rival readings of the tube's L lines and of the broad-lines check, late night of 3 "
    "December), 800000-800299 (held out that night, measured once; 800187 looked at after), "
    "810000-810299 (held out that night, measured once; 810068 looked at after), and on 4 "
    "December 400000-400299, 500000-500599, 100000-100199 and 90000-90299 again (the "
    "Compton width, the unexplained peaks, the window start; new seeds for tests), "
    "820000-820299 (held out that day, measured once before the last change to the window "
    "start: 72 % within 10 eV, bound 94 %, 1 silent failure, 820042, looked at after). "
    "The synthetic continuum is detector-broadened since the late night of 3 December (its "
    "filter edges and tube-voltage end were sharp steps before), and since 4 December a "
    "primary filter excites the element lines shell by shell (before, each line was "
    "scaled by the filter's transmission at its own energy): ranges measured earlier "
    "were measured on those spectra. 830000-830299 held out on 4 December evening, measured "
    "once (76 % within 10 eV, bound 95 %, no silent failure); on 4 December night "
    "400000-400299 and 500000-500599 again (the Rayleigh width tied to the zero peak, the "
    "choice of weaker-scored good solutions, the resolution check's uncertainties), 5200-5223 "
    "(test suite), 500315, 500558 and 500571 looked at (now tests), 840000-840299 (held out "
    "that night, measured once with a choice of weaker-scored good solutions since "
    "reverted: 75 % within 10 eV, bound 94 %, 86 % where pinned, 2 silent failures, 840012 "
    "from that choice and 840226 from the older rule that took a less-explaining good "
    "solution, now removed; both looked at after), 850000-850299 (held out that night, "
    "measured once: 75 % within 10 eV, bound 93 %, 88 % where pinned, no silent failure), "
    "and later that night 400000-400299 and 500000-500599 again (the weighted Fano law of the "
    "hypotheses, the off-axis zero peak's error, the background model of the anode K lines; "
    "400141, 400205, 500401 and 500596 looked at, now tests), 860000-860299 (held out that "
    "night, measured once: 75 % within 10 eV, bound 93 %, 86 % where pinned, no silent "
    "failure), and on 5 December 400000-400299 and 500000-500599 again (the zero peak's "
    "width judged on the resolution it implies, noise bumps no line must explain, a refuted "
    "best handing over to a solution passing every check, the anode lines' own peaks, the "
    "line-width check's majority, two-peak fits with an element line; 400014, 400071, "
    "400135, 400215, 400273, 500017, 500089, 500101, 500315, 500362, 500365 and 500571 "
    "looked at, most now tests; 840226, 100018 and 100177 re-run), 870000-870299 (held out "
    "that day, measured once: 80 % within 10 eV, bound 96 %, 91 % where pinned, no silent "
    "failure), and later on 5 December 400000-400299 and 500000-500599 again, with their "
    "noise-free spectra (the anode's free K lines weighed at their measured systematic, "
    "merged lines of one element, rival readings failing more checks, window fits at their "
    "bound, lines under a stronger fitted line; 400121, 400295, 500003, 500069, 500237 and "
    "500283 looked at, two now tests), 880000-880299 (held out that day, measured once: 77 % "
    "within 10 eV, bound 94 %, 89 % where pinned, one silent failure, 880119, looked at "
    "after and now a test), then 400000-400299 and 500000-500599 again (a line group's "
    "spread in the width test, blends with tube lines in the broad-lines check; 500029 and "
    "500118 looked at, now tests), 890000-890299 (held out that day, measured once: 73 % "
    "within 10 eV, bound 93 %, 86 % where pinned, no silent failure), and in the next "
    "session of 5 December 400000-400299 and 500000-500599 again (narrow peaks refitted in a "
    "window of their own, the larger of two width estimates for the too-narrow test, no "
    "width law from one element's lines beside the zero peak, the anode scatter check "
    "refuting only at either resolution; 400014, 400018, 400136, 400139, 400218, 400232, "
    "500018, 500041, 500392, 500486 and 500495 looked at, several now tests), 910000-910299 "
    "(held out that session, measured once: 78 % within 10 eV, bound 96 %, 88 % where "
    "pinned, no silent failure), 920000-920299 (held out right after on the same code, "
    "measured once: 80 %, bound 94 %, no silent failure), and in the next session "
    "400000-400299 and 500000-500599 again (the tube's K-beta2 fitted beside K-beta, the L "
    "lines of a K anode matched only beside L-alpha; 100006, 400083, 400188, 400196, 400252, "
    "400295, 500086, 500237, 500346, 500360, 500430, 500543 and 500069 looked at, some now "
    "tests), 930000-930299 (held out that session, measured once before its last change: "
    "78 % within 10 eV, bound 94 %, 89 % where pinned, no silent failure), then "
    "400000-400299 and 500000-500599 again (an element's reference spanning one FWHM; "
    "400196, 400205, 500224, 500283, 500307, 500338, 500347, 500546 and 500596 looked at), "
    "940000-940299 (held out that session, measured once: 81 % within 10 eV, bound 95 %, 92 % "
    "where pinned, no silent failure), and in the next session 400000-400299 and "
    "500000-500599 again (tube K lines fitted beside a near Compton peak, sample lines "
    "within reach of a blend's window, blends the model does not describe; 400014, 400015, "
    "400026, 400072, 400121, 400252, 400297, 500011, 500070, 500078, 500155, 500232, 500401 "
    "and 500485 looked at, some now tests), 950000-950299 (held out that session, measured "
    "once before its last change, the anode scatter check's likelihood ratio: 86 % within 10 "
    "eV, bound 95 %, 94 % where pinned, no silent failure; 950082 looked at after), then "
    "400000-400299 and 500000-500599 again (500011 looked at, now a test), 960000-960299 "
    "(held out that session, measured once: 80 % within 10 eV, bound 94 %, 93 % where "
    "pinned, no silent failure), and in the next session 400000-400299 and 500000-500599 "
    "again (one scattering angle for a W tube's blends, the weight of a Rayleigh line in "
    "its blend, escape peaks near 0 keV; 400018, 400021, 400039, 400068, 400072, 400121, "
    "400171, 400174, 400198, 400295, 400297, 400298, 500032 and 500142 looked at), 5200-5215 "
    "and 5300-5344 (test suite), and 400000-400299 and 500000-500599 on a synthetic scatter "
    "whose Compton partners follow the matrix's cross-sections (kept off main), and "
    "1100000-1100149 with the anode forced to Cr, W and Cu (filters that take the tube's "
    "line; 1100016, 1100020, 1100063 and 1100143 looked at), 970000-970299 (held out that "
    "session, measured once: 82 % within 10 eV, bound 95 %, 94 % where pinned, no silent "
    "failure; 970149 and 970187 looked at after), and in the next session, on the matrix's "
    "Compton model, 400000-400299 and 500000-500599 again, 5200-5279 (W blanks, the shared "
    "blend angle), 1100000-1100149 again with the anode forced to Cr, W and Cu (1100016, "
    "1100063, 1100106, 1100131 and 1100143 looked at: a filter that takes the tube's line), "
    "and 5003, 90092 and 100227 looked at (tests whose draws changed), 980000-980299 (held out "
    "that session, measured once: 77 % within 10 eV, bound 93 %, 90 % where pinned, no silent "
    "failure), and in the next session 400000-400299 and 500000-500599 from the true axis "
    "(where the bound's information lies; 400297, 500070, 500186, 500520 and 500339 looked at, "
    "and 400029 and 500313 after 990000-990299 was measured), "
    "with no change to the calibration; in the session of the night of 5 December "
    "990000-990299, 400000-400299 and 500000-500599 again as development of the choice of "
    "lines (990079, 990093, 990121, 990184, 990192, 990217, 970094, 970295, 980049, 980055, "
    "980070, 400029, 400081, 400253, 400271, 500087, 500107 and 500234 looked at), "
    "1000000-1000299 (held out that night, measured once: 81 % within 10 eV, bound 94 %, "
    "92 % where pinned, no silent failure) and 1100000-1100149 with the anode forced to W, "
    "1010000-1010299 (held out that night, measured once: 80 % within 10 eV, bound 94 %, "
    "92 % where pinned, no silent failure), and in the session of 6 December 400000-400299, "
    "500000-500599, 990000-990299 and 1100000-1100149 (W forced) again as development of the "
    "precision (element lines on a Compton peak; 990161, 990199, 500041, 500070, 500339, "
    "980070, 1000155, 1000173, 1000206, 1000250 and 1010061 looked at), 1020000-1020299 "
    "(held out that session, measured once before its last change: 82 % within 10 eV, bound "
    "94 %, 92 % where pinned, one silent failure, 1020100, looked at after and now a test), "
    "1030000-1030299 (held out that session, measured once on its final code: 81 % within 10 "
    "eV, bound 96 %, 89 % where pinned, no silent failure), and in the session of 6 December "
    "morning 400000-400299, 500000-500599, 990000-990299 and 1000000-1030299 as development "
    "of the polish of the chosen axis and of sample lines hidden in a blend's window "
    "(1030182, 1010174, 1000009, 1030288, 1020299, 1030247, 400081 and 400195 looked at), "
    "1040000-1040299 (held out that session, measured once on its final code: 82 % within 10 "
    "eV, bound 96 %, 92 % where pinned, no silent failure), and in the session of 6 December "
    "late morning 400000-400299, 500000-500599, 990000-990299 and 1000000-1030299 again as "
    "development of the swapped reading of the tube's and an element's lines and of the "
    "K-beta height rule (400271, 1030089, 990105, 1020134, 500242 and 1010037 looked at), "
    "1050000-1050299 (held out that session, measured once after a crash fixed before any "
    "result was seen: 83 % within 10 eV, bound 94 %, 95 % where pinned, no silent failure; "
    "1050078, 1050220, 1050277, 1050002, 1050016 and 1050059 looked at after), and in the "
    "session of 6 December noon 400000-400299, 500000-500599, 990000-990299 and "
    "1000000-1030299 again as development of the filter edge's step beside a blend "
    "(1050220, 400066, 990028, 1010073, 1020272, 90092, 5003, 1030182, 400215, 500020, "
    "1010048 and 1020074 looked at), 1060000-1060299 (held out that session, measured once on "
    "its final code: 81 % within 10 eV, bound 95 %, 91 % where pinned, no silent failure; "
    "1060119 looked at after), and in the session of 6 December afternoon 400000-400299, "
    "500000-500599, 990000-990299 and 1000000-1030299 again as development of the choice "
    "among judged solutions and of the unexplained-peaks check (1060143, 1060178, 500172, "
    "1000121, 1010032, 1010282, 1030178, 1030287, 500466, 840226, 1010128, 1020184, 400001, "
    "500035, 1010157, 1010248 and 1020263 looked at), 1070000-1070299 (held out that "
    "session, measured once: 79 % within 10 eV, bound 94 %, 91 % where pinned, 2 silent "
    "failures: 1070034, which that session's span rule had made good, fixed after and now a "
    "test, and 1070038, good on the code before that session too; both looked at after), "
    "1080000-1080299 (held out that session, measured twice on its final code, identical: "
    "84 % within 10 eV, bound 94 %, 94 % where pinned, no silent failure; not looked at), "
    "and in the session of 6 December evening 400000-400299, 500000-500599, 990000-990299 "
    "and 1000000-1030299 again as development of the width bound that a line's partner above "
    "it sets and of the companion lines' and escapes' evidence in the unexplained-peaks check, "
    "with 400000-400299 and 1000000-1000299 judged candidate by candidate (1070038, 400172, "
    "400186, 400280, 500037, 500118, 500468, 990065, 1000283, 1010173, 1030154 and 1030158 "
    "looked at), 1090000-1090299 (held out that session, measured once on its final code: 81 % "
    "within 10 eV, bound 94 %, 92 % where pinned, 1 silent failure, 1090027, good on the code "
    "before that session too; looked at after), 500000-500299 and 1010000-1010299 judged "
    "candidate by candidate at that session's end, and in the session of 6 December night "
    "400000-400299, 500000-500599, 990000-990299 and 1000000-1030299 again as development of "
    "the joint test of the independent lines and of the sum peaks' and merged lines' rules in "
    "the unexplained-peaks check (1090027, 500062, 500067, 1010128, 1010281, 400186, 500196, "
    "400280, 990065, 1000283, 1010173 and 1030154 looked at); 1110000-1110299 (held out that "
    "night, measured once: 81.7 % within 10 eV, bound 93 %, 94.6 % where pinned, no silent "
    "failure; on 6 December late evening 1110069, 1110136, 1110097, 1110155, 1110233, "
    "1110096, 1110257 and 1110121 looked at after, for the precision misses the robust bound "
    "does not explain), and that evening 400000-400299, 500000-500599 (Ag and Rh anodes: a K "
    "anode's soft L lines as references of their own, not shipped), 1000000-1000299 and "
    "1010000-1010299 as development of the unexplained peaks' local axis uncertainty, "
    "990000-990299 and 1020000-1020299 judged candidate by candidate (990063, 990121 found), "
    "and 400195 and 400001 looked at; 1120000-1120299 (held out that night, measured once: "
    "80.7 % within 10 eV, bound 95 %, 90.9 % where pinned, no silent failure; on 6 December "
    "at night its precision misses looked at after from the true axis, with those of the "
    "earlier held-out ranges), and that night 400000-400299, 1000000-1000299 and "
    "1010000-1010299 as development of the soft-peaks check, 1010000-1010299 judged "
    "candidate by candidate (1010281, 990121 and 1010128 looked at); 1130000-1130299 (held "
    "out that night, measured once: 82.3 % within 10 eV, bound 94 %, 92.7 % where pinned, "
    "no silent failure), and on 7 December 400000-400299, 1000000-1000299 and "
    "1010000-1010299 as development of the continuum-edge, anode-scatter and alias checks on "
    "right axes, 400000-400299 and the W seeds of 1010000-1010299 judged candidate by "
    "candidate (400047, 1000245, 400087, 1000103, 1010110, 1010223 and 1010233 looked at); "
    "1140000-1140299 (held out that night, measured once: 80.7 % within 10 eV, bound 94 %, "
    "93.0 % where pinned, one silent failure, 1140078, looked at after and refuted; 1140088 "
    "and 1140239, precision misses, looked at after), and on 7 December morning "
    "400000-400299, 1000000-1000299 and 1010000-1010299 again (faster blend fits with the "
    "same results; a filter edge's step and a Compton partner at the angle bound in the "
    "anode scatter check; a K element's own L lines in the unexplained-peaks check); "
    "1150000-1150299 (held out that morning, measured once: 82.0 % within 10 eV, bound 95 %, "
    "92.0 % where pinned, no silent failure; 1150008, 1150201 and 1150270 looked at after, "
    "and later that morning its blanks' errors from the true axis, 1150196 looked at after), "
    "and then 400000-400299, 1000000-1000299 and 1010000-1010299 again (the weak family "
    "lines of a blend at the tube's ratio, trace lines fitted beside a misfitting blend; "
    "test-suite draws 5200-5215 with matrix=None, 5209 looked at); 1160000-1160299 (held "
    "out that morning, measured once: 82.3 % within 10 eV, bound 95 %, 91.1 % where "
    "pinned, no silent failure; its seven good results 10-30 eV off looked at after, "
    "1160225 and 1160247 among them), and then the Ag, Rh and Mo seeds of 400000-400299, "
    "1000000-1000299 and 1010000-1010299 again (a K anode's soft L lines); 1170000-1170299 "
    "(held out that morning, measured once: 82.7 % within 10 eV, bound 94 %, 93.1 % where "
    "pinned, one silent failure, 1170048, looked at after, a strict xfail test until the "
    "companion lines check took it on 7 December), and that session 400000-400299, "
    "1000000-1000299 and 1010000-1010299 again (a main line's companion due from its "
    "height; a K anode's soft L lines grouped as a sample's, not shipped), 1160000-1160299 "
    "and 1170000-1170299 rerun whole for the first (1160247 looked at after); 1180000-1180299 "
    "(held out that morning, measured once: 78.0 % within 10 eV, bound 93 %, 91.7 % where "
    "pinned, one silent failure, 1180060, looked at after and refuted since), and then "
    "400000-400299, 1000000-1000299 and 1010000-1010299 again (a filter edge's step only "
    "where the counts drop; a trace refuted by its missing companion; a K anode's soft "
    "L-beta2 fitted beside only, not shipped); 1190000-1190299 (held out that morning, "
    "measured once: 81.3 % within 10 eV, bound 94 %, 93.1 % where pinned, no silent "
    "failure, every good result within 10 eV), and then 400000-400299, 1000000-1000299 and "
    "1010000-1010299 again (a trace family fitted by its lines inside the window; 1000128 "
    "looked at); 1200000-1200299 (held out that afternoon, measured once on that session's "
    "final code: 82.3 % within 10 eV, bound 94 %, 93.2 % where pinned, no silent failure, "
    "four good results 12-17 eV off, not looked at); in the session of 7 December afternoon "
    "the Cr, W and Cu seeds of 1000000-1000299 and 1010000-1010299 from the true axis only "
    "(where the precision misses come from: the blends' stated errors hold their true "
    "errors; the true angle and resolution given to the fit gain 3-6 of 100 W seeds; "
    "nothing changed); 1210000-1210299 (held out that afternoon, measured once: 82.3 % "
    "within 10 eV, bound 94 %, 91.2 % where pinned, two silent failures, 1210143 and "
    "1210287, looked at after; rerun whole after their two changes, and 400000-400299, "
    "1000000-1000299 and 1010000-1010299 again for each); 1220000-1220299 (held out that "
    "afternoon, measured once: 86.7 % within 10 eV, bound 96 %, 95.1 % where pinned, one "
    "silent failure, 1220214, looked at after; then rerun whole with 1210000-1210299, and "
    "400000-400299, 1000000-1000299 and 1010000-1010299 again); 1230000-1230299 (held out "
    "that afternoon, measured once on the session's final code: 80.7 % within 10 eV, bound "
    "93 %, 93.8 % where pinned, no silent failure; not looked at); 1240000-1240299 (held "
    "out on 7 December afternoon, measured once on that code: 79.7 % within 10 eV, bound 92 "
    "%, 95.3 % where pinned, one silent failure, 1240073, looked at after, and 1240001 and "
    "1240167, right axes the first form of its change made doubtful; then rerun whole with "
    "1210000-1230299, 400000-400299, 1000000-1000299 and 1010000-1010299); 1250000-1250299 "
    "(held out that afternoon, measured once after that change: 84.0 % within 10 eV, bound "
    "95 %, 93.7 % where pinned, no silent failure; not looked at); 1260000-1260299 (held out "
    "that afternoon, measured once on the same code: 81.7 % within 10 eV, bound 93 %, 94.6 % "
    "where pinned, one silent failure, 1260206, looked at after: its Cr K-alpha blend fitted "
    "with the Ti filter's edge below the window since, the choice not changed; then rerun "
    "whole with 1240000-1250299, 400000-400299, 1000000-1000299 and 1010000-1010299); "
    "1270000-1270299 (held out that evening, measured once on that session's final code: "
    "81.0 % within 10 eV, bound 93 %, 94.7 % where pinned, no silent failure; not looked "
    "at); on 7 December evening 400000-400299, 1000000-1010299 and 1200000-1270299 with "
    "every judged solution recorded (the choice against a best doubtful for coverage "
    "alone; 1260206, 400195 and 400002 looked at), and the precision misses of "
    "1200000-1270299 from the true axis (1200123, 1230146, 1250257 looked at; the zero "
    "peak cut by the axis fitted by Poisson likelihood, not shipped); 1280000-1280299 (held "
    "out that evening, measured once: 80.0 % within 10 eV, bound 93 %, 91.9 % where pinned, "
    "no silent failure; 1280264, failed on a right axis, looked at after); in the session of "
    "7 December night 400000-400299, 1000000-1010299 and 1200000-1200299 with every judged "
    "solution recorded (400004, 990121, 1010080, 1200123 and 1000275 looked at); "
    "1290000-1290299 (held out that night, measured once: 82.0 % within 10 eV, bound 93 %, "
    "no silent failure; 1290009 and 1290189 looked at after); on 8 December "
    "400000-400299 and 1000000-1010299 again with every judged solution recorded (the "
    "blend fits' quick starts; 400243 looked at)"
)
SPECTRA = Path(__file__).resolve().parents[1] / "tests" / "data" / "spectra"


def _one(case) -> dict:
    t = time.process_time()  # CPU time: the machine is shared, wall time means little
    try:
        cal = auto_calibrate(case.counts, anode=case.anode, tube_kv=case.tube_kv)
        err, quality = case.max_error_eV(cal.gain_keV, cal.offset_keV), cal.quality
    except CalibrationError:
        err, quality = float("inf"), "error"  # an explicit error is an honest failure
    cpu = time.process_time() - t
    kw = {"anode": case.anode, "tube_kv": case.tube_kv}
    try:  # the precision ceiling: the peaks' own fit started from the true axis
        ref = refine_calibration(case.counts, case.gain_keV, case.offset_keV, **kw)
        from_truth, truth_quality = case.max_error_eV(ref.gain_keV, ref.offset_keV), ref.quality
    except CalibrationError:
        from_truth, truth_quality = float("inf"), "error"
    bound, robust = case.axis_bound(), case.axis_bound(robust=True)
    return {
        "seed": case.seed, "anode": case.anode, "kind": case.kind, "gain_eV": case.gain_keV * 1e3,
        "offset_keV": case.offset_keV, "zero_peak": case.zero_peak, "filter": case.filter,
        "counts": float(case.counts.sum()), "max_error_eV": err if np.isfinite(err) else None,
        "quality": quality, "cpu_seconds": cpu,
        "from_true_axis_error_eV": from_truth if np.isfinite(from_truth) else None,
        "from_true_axis_quality": truth_quality,
        "bound_within_10_eV": bound["p_within"], "bound_sd_eV": [bound["sd_lo_eV"], bound["sd_hi_eV"]],
        "robust_bound_within_10_eV": robust["p_within"],
        "robust_bound_sd_eV": [robust["sd_lo_eV"], robust["sd_hi_eV"]],
    }


def _summary(rows: list[dict]) -> dict:
    err = np.array([r["max_error_eV"] if r["max_error_eV"] is not None else np.inf for r in rows])
    q = np.array([r["quality"] for r in rows])
    out = {
        "n": len(rows),
        "within_10_eV": float(np.mean(err <= 10.0)),
        "good": float(np.mean(q == "good")),
        "good_and_within_10_eV": float(np.mean((q == "good") & (err <= 10.0))),
        "silent_failures_over_30_eV_called_good": int(np.sum((q == "good") & (err > 30.0))),
        "over_30_eV": int(np.sum(err > 30.0)),
        "errors_raised": int(np.sum(q == "error")),
        "verdicts": {k: int(np.sum(q == k)) for k in ("good", "doubtful", "failed", "error")},
    }
    if all("from_true_axis_error_eV" in r for r in rows):
        # where the misses come from: a wrong choice of identities (started from the true
        # axis the peaks' fit lands within 10 eV) or the precision of the peaks themselves
        tr = np.array([r["from_true_axis_error_eV"] if r["from_true_axis_error_eV"] is not None else np.inf
                       for r in rows])
        out["from_true_axis_within_10_eV"] = float(np.mean(tr <= 10.0))
        out["missed_by_choice"] = int(np.sum((err > 10.0) & (tr <= 10.0)))
        out["missed_by_precision"] = int(np.sum((err > 10.0) & (tr > 10.0)))
        if all("from_true_axis_quality" in r for r in rows):
            # refine_calibration's own verdict (an axis known roughly, a header's): never
            # good far off either
            tq = np.array([r["from_true_axis_quality"] for r in rows])
            out["from_true_axis_silent_failures"] = int(np.sum((tq == "good") & (tr > 30.0)))
    if all("bound_within_10_eV" in r for r in rows):
        # the ceiling: the mean chance of an unbiased calibration knowing the line shapes
        # to land within 10 eV (Cramér-Rao); no method reaches a higher rate on average
        bound = np.array([r["bound_within_10_eV"] for r in rows])
        out["bound_within_10_eV"] = float(np.mean(bound))
        # the method's own rate where the data pin the axis (the bound all but certain)
        pinned = bound >= 0.99
        out["pinned_by_the_data"] = int(np.sum(pinned))
        out["within_10_eV_where_pinned"] = float(np.mean(err[pinned] <= 10.0)) if pinned.any() else None
    if all("robust_bound_within_10_eV" in r for r in rows):
        # the ceiling of a method that takes from tables neither the tube lines' ratios
        # (filter, matrix), the Fano factor, nor the Compton peak's broadening and place
        out["robust_bound_within_10_eV"] = float(np.mean([r["robust_bound_within_10_eV"] for r in rows]))
    return out


def real_spectra() -> list[dict]:
    """Auto calibration of every vendored real spectrum against its instrument's."""
    out = []
    for path in sorted(SPECTRA.glob("*.[ms][sp][ax]")):
        s = read_spectrum(path)
        g, o = s.header_calibration
        cal = auto_calibrate(s.counts, anode=s.anode, tube_kv=s.tube_kv, header=s.header_calibration)
        e_true = o + g * np.arange(s.counts.size)
        m = (e_true >= 2) & (e_true <= 20)
        err = float(np.max(np.abs(cal.energies(s.counts.size)[m] - e_true[m])) * 1e3)
        out.append({"file": path.name, "anode": s.anode, "max_error_eV": err, "quality": cal.quality})
    return out


def report(rows: list[dict], real: list[dict]) -> dict:
    """The saved result: overall and per anode/kind/zero-peak summaries, the real spectra."""
    by = {}
    for key in ("anode", "kind", "zero_peak"):
        for v in sorted({str(r[key]) for r in rows}):
            by[f"{key}={v}"] = _summary([r for r in rows if str(r[key]) == v])
    seeds = sorted(r["seed"] for r in rows)
    return {
        "seeds": f"{seeds[0]}-{seeds[-1]}",
        "seeds_used_while_developing": DEV_SEEDS,
        "synthetic": _summary(rows),
        "cpu_seconds_per_spectrum": {
            "median": float(np.median([r["cpu_seconds"] for r in rows])),
            "max": float(np.max([r["cpu_seconds"] for r in rows])),
        },
        "loadavg": list(os.getloadavg()),
        "synthetic_by": by,
        "real": {
            "n": len(real),
            "all_good_within_10_eV": all(r["quality"] == "good" and r["max_error_eV"] <= 10 for r in real),
            "worst_error_eV": max(r["max_error_eV"] for r in real),
            "spectra": real,
        },
        "cases": rows,
    }


def seed_range(text: str) -> range:
    """The seeds ``FIRST-LAST`` (inclusive) as a range."""
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def main() -> dict:
    warnings.filterwarnings("ignore")
    seeds = seed_range(os.environ.get("MAXRF_BENCH_SEEDS", SEEDS))
    procs = int(os.environ.get("MAXRF_BENCH_PROCS", "2"))
    with multiprocessing.get_context("spawn").Pool(procs) as pool:  # CPU time is per case
        rows = pool.map(_case, seeds, chunksize=4)
    return report(rows, real_spectra())


def _case(seed: int) -> dict:
    warnings.filterwarnings("ignore")
    return _one(calibration_case(seed))
