"""Unsupervised maps: non-negative components (NMF) and material classes of pixels.

Element maps say where an element is; materials are mixtures (vermilion Hg + S, umber
Fe + Mn, brass Cu + Zn) that share elements and overlap. :func:`decompose` finds
non-negative component spectra and their abundance maps, :func:`cluster` the material
classes of pixels, both in bounded memory whatever the cube size:

1. *Sample*: a spatially stratified sample of pixels (every few blocks of the engine,
   a regular grid of pixels in each) plus the hotmax spectra, binned in energy at half the
   detector resolution (a few hundred bins).
2. *Rank*: the sample is scaled for Poisson noise (Keenan & Kotula, Surf. Interface Anal.
   36 (2004) 203: ``X / sqrt(row mean x column mean)``, so that the noise is about unit
   variance); its singular values above the random-matrix noise edge
   ``sigma * (sqrt(n) + sqrt(m))`` count the components the data supports.
3. *Fit*: NMF of the scaled sample (coordinate descent), unscaled to counts.
4. *Apply*: one pass of the engine over the cube; per block the abundances are the
   non-negative least squares solution with the component spectra fixed
   (:func:`maxrf.maps` NNLS solver), the material class is predicted from them, and the
   normal equations of the full-resolution component spectra and the class sums are
   accumulated from the same read.

Each component is labelled with the elements whose line patterns
(:func:`maxrf.physics.element_spectrum`) explain it, and the result carries its evidence
(rank against the noise edge, reduced chi-square of the reconstruction, how much of each
component the element lines and scatter explain) and a verdict.
"""

from maxrf.decomposition.api import (
    AGREEMENT_GOOD,
    CHI2_DOUBTFUL,
    CLASSES_LAYER,
    EXPLAINED_GOOD,
    LAYER,
    cluster,
    decompose,
)
from maxrf.decomposition.nmf import METHODS, estimate_rank
from maxrf.decomposition.results import Clustering, Decomposition
from maxrf.decomposition.sample import energy_bins

__all__ = [
    "AGREEMENT_GOOD",
    "CHI2_DOUBTFUL",
    "CLASSES_LAYER",
    "EXPLAINED_GOOD",
    "LAYER",
    "METHODS",
    "Clustering",
    "Decomposition",
    "cluster",
    "decompose",
    "energy_bins",
    "estimate_rank",
]
