"""decompose() and cluster(): the sample fit, the pass, the verdict, the layers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maxrf import engine
from maxrf.decomposition.apply import CHI2_STEP, ApplyComponents, Collector
from maxrf.decomposition.classes import Classifier, fit_classes
from maxrf.decomposition.labels import label_components, stored_candidates
from maxrf.decomposition.mixture import principal_axes
from maxrf.decomposition.nmf import METHODS, estimate_rank, one_blas_thread, poisson_scale
from maxrf.decomposition.results import Clustering, Decomposition
from maxrf.decomposition.sample import energy_bins, sample_spectra
from maxrf.errors import ParameterError
from maxrf.store import DataStack

LAYER = "decomposition"
CLASSES_LAYER = "clusters"
#: Fraction of a component's counts the element lines and scatter must explain for "good".
EXPLAINED_GOOD = 0.9
#: Median reduced chi-square of the reconstruction above which the verdict is "doubtful".
CHI2_DOUBTFUL = 2.0
#: Correlation of two components' abundances (where one is present) that flags a split.
COVARY_R = 0.9
#: Agreement (cosine) of two starts of the fit needed for a "good" verdict.
AGREEMENT_GOOD = 0.9


def decompose(
    ds: DataStack | str | os.PathLike,
    n_components: int | None = None,
    method: str = "nmf",
    *,
    classes: bool = True,
    n_classes: int | None = None,
    max_components: int = 12,
    max_classes: int = 10,
    sample_pixels: int = 4000,
    store: bool = True,
    seed: int = 0,
    client: Any = None,
    progress: bool = False,
) -> Decomposition:
    """Non-negative components of a scan, their abundance maps, and material classes.

    Parameters
    ----------
    ds : DataStack or path
        A calibrated datastack.
    n_components : int, optional
        Number of components; by default as many as rise above the Poisson noise
        (:func:`estimate_rank`).
    method : str
        Fitting method, a key of :data:`METHODS` (``'nmf'``).
    classes : bool
        Also classify pixels into materials (:class:`Clustering`) in the same pass.
    n_classes : int, optional
        Number of classes; by default chosen by BIC (2 .. ``max_classes``).
    max_components, max_classes : int
        Upper bounds for the automatic choices.
    sample_pixels : int
        Size of the spatially stratified pixel sample the components are fitted on.
    store : bool
        Write the ``decomposition`` (and ``clusters``) layers, maps streamed band by band.
    seed : int
        Random seed of the fits.
    client : dask.distributed.Client or str, optional
        Run the passes on a cluster.
    progress : bool
        Progress bar of the pass.

    Returns
    -------
    Decomposition
    """
    from maxrf.store import open_datastack

    ds = open_datastack(ds)
    if method not in METHODS:
        raise ParameterError(f"unknown decomposition method {method!r}; choose from {sorted(METHODS)}")
    for name, v in (("n_components", n_components), ("n_classes", n_classes)):
        if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
            raise ParameterError(f"{name} must be a positive integer, got {v!r}")
    with one_blas_thread():  # the pass runs blocks in threads of its own: no nested BLAS threads
        return _decompose(ds, n_components, method, classes, n_classes, max_components,
                          max_classes, sample_pixels, store, seed, client, progress)


def _decompose(ds: DataStack, n_components: int | None, method: str, classes: bool,
               n_classes: int | None, max_components: int, max_classes: int, sample_pixels: int,
               store: bool, seed: int, client: Any, progress: bool) -> Decomposition:
    fit = _learn(ds, n_components, method, max_components, sample_pixels, seed, client)
    if classes:
        fit.classifier, fit.bic = fit_classes(fit.w_s, n_classes, max_classes, seed)
    _, hcol = poisson_scale(fit.xs)
    reduction = ApplyComponents(fit.edges, fit.hb, 1.0 / hcol, fit.classifier)
    run = {"client": client, "progress": progress, "description": "decompose"}
    if not store:
        sink = Collector(ds.shape[:2], fit.hb.shape[0])
        engine.run(ds.block_source(), {"a": reduction}, outputs={"a": sink}, **run)
        return _finish(fit, sink)
    return _apply_stored(ds, fit, reduction, run)


def _learn(ds: DataStack, n_components: int | None, method: str, max_components: int,
           sample_pixels: int, seed: int, client: Any) -> _Fit:
    """Sample, rank and factorise: the components, as unit-area binned spectra."""
    e = np.asarray(ds.energies, dtype=float)
    cal = ds.calibration or {}
    anode, tube_kv = str(cal.get("anode") or "Rh"), float(cal.get("tube_kv") or 40.0)
    edges = energy_bins(e, np.asarray(ds.sum_spectrum, dtype=float), tube_kv=tube_kv)
    xs, coords = sample_spectra(ds, edges, sample_pixels, client)
    rank = estimate_rank(xs, max_components, seed=seed)
    k = int(n_components) if n_components else rank["rank"]
    rank["chosen"] = "given" if n_components else "noise"
    w_s, hb, info = METHODS[method](xs, k, seed)
    rank["agreement"] = round(info["agreement"], 4)
    rank["fit_errors"] = [round(x, 3) for x in info.get("fit_errors", [])]
    # unit-area components: abundances are then counts of the component in a pixel
    unit = np.maximum(hb.sum(axis=1), 1e-12)
    hb, w_s = hb / unit[:, None], w_s * unit[None, :]
    order = np.argsort(-w_s.sum(axis=0))
    return _Fit(xs, coords, e, edges, rank, w_s[:, order], hb[order], anode, tube_kv, method,
                stored_candidates(ds))


def _apply_stored(ds: DataStack, fit: _Fit, reduction: ApplyComponents, run: dict[str, Any]
                  ) -> Decomposition:
    """The pass with the maps streamed into the new layers band by band, committed at the end."""
    from maxrf.store import LayerWriter

    h, w = ds.shape[:2]
    k = fit.hb.shape[0]
    with LayerWriter(ds.path) as lw:
        rows = engine.band_rows((h, w), k + 2, ds.chunks[0])
        maps = lw.create(LAYER, "maps", (k, h, w), np.float32, (1, rows, w))
        chi2 = lw.create(LAYER, "chi2", (h, w), np.float32, (rows, w))
        labels = (lw.create(CLASSES_LAYER, "labels", (h, w), np.int16, (rows, w))
                  if fit.classifier is not None else None)

        def flush(r: slice, band: np.ndarray) -> None:
            lw.write(maps, (slice(None), r), band[:k])
            lw.write(chi2, (r,), band[k])
            if labels is not None:
                lw.write(labels, (r,), band[k + 1].astype(np.int16))

        sink = Collector((h, w), k, flush, rows)
        engine.run(ds.block_source(), {"a": reduction}, outputs={"a": sink}, **run)
        result = _finish(fit, sink)
        _put(lw, result)
    layer = ds.read(LAYER, lazy=True)
    result.maps, result.chi2 = layer["maps"], layer["chi2"]
    if result.clustering is not None:
        result.clustering.labels = ds.read(CLASSES_LAYER, lazy=True)["labels"]
    return result


@dataclass
class _Fit:
    """What the sample fit learned, carried to the end of the pass."""

    xs: np.ndarray
    coords: np.ndarray
    energies: np.ndarray
    edges: np.ndarray
    rank: dict[str, Any]
    w_s: np.ndarray
    hb: np.ndarray
    anode: str
    tube_kv: float
    method: str
    candidates: list[str] | None
    classifier: Classifier | None = None
    bic: dict[int, float] = field(default_factory=dict)


def _finish(fit: _Fit, col: Collector) -> Decomposition:
    """Full-resolution components from the accumulated normal equations, labels, classes,
    verdict."""
    k = fit.hb.shape[0]
    lo, hi = int(fit.edges[0]), int(fit.edges[-1])
    ata, atx = col.acc["ata"], col.acc["atx"]
    ridge = 1e-9 * max(float(np.trace(ata)), 1e-12) * np.eye(k)
    full = np.maximum(np.linalg.solve(ata + ridge, atx), 0.0)
    components = full / np.maximum(full[:, lo:hi].sum(axis=1), 1e-12)[:, None]
    elements, explained = label_components(components, fit.energies, lo, hi, fit.anode,
                                            fit.tube_kv, fit.candidates)
    clustering = None
    if fit.classifier is not None:
        g, hcol = poisson_scale(fit.xs)
        scaled = fit.xs / np.sqrt(g)[:, None]
        scaled /= np.sqrt(hcol)[None, :]
        emb = principal_axes(scaled, 2)
        count = col.acc["count"]
        spectra = col.acc["sums"] / np.maximum(count, 1)[:, None]
        centres = fit.classifier.centres()
        sample_labels = fit.classifier.predict(fit.w_s).astype(np.int16)
        clustering = Clustering(col.labels, spectra, count, centres, emb.astype(np.float32),
                                fit.coords, sample_labels, "gmm", fit.bic)
    maps = chi2 = None
    if col.maps is not None:
        maps, chi2 = col.maps[:k], col.maps[k]
        if clustering is not None:
            clustering.labels = col.labels
    cum = np.cumsum(col.acc["chi2_hist"])
    chi2_median = float((np.searchsorted(cum, cum[-1] / 2) + 0.5) * CHI2_STEP)
    quality, checks = _verdict(fit.rank, explained, elements, chi2_median, _covarying(fit.w_s))
    return Decomposition(components, maps, elements, explained, fit.energies, fit.edges, chi2,
                         fit.rank, quality, checks, fit.method, clustering)


def _covarying(w: np.ndarray, r_min: float = COVARY_R) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, r)`` of components whose abundances rise and fall together wherever
    ``j`` is present: parts of one material that NMF split (an alloy such as brass fits as
    well as a Cu and a Zn component), so the split is not to be trusted."""
    out = []
    k = w.shape[1]
    for j in range(k):
        where = w[:, j] > 0.25 * np.percentile(w[:, j], 99)
        if where.sum() < 10:
            continue
        for i in range(k):
            if i == j:
                continue
            a, b = w[where, i], w[where, j]
            if a.std() > 0 and b.std() > 0 and np.mean(a) > 0.1 * np.mean(b):
                r = float(np.corrcoef(a, b)[0, 1])
                if r >= r_min:
                    out.append((i, j, round(r, 3)))
    return out


def _verdict(rank: dict[str, Any], explained: np.ndarray, elements: list[list[str]],
             chi2_median: float | None, covary: list[tuple[int, int, float]]
             ) -> tuple[str, list[dict[str, Any]]]:
    checks = []
    agree = float(rank.get("agreement", 1.0))
    checks.append({"name": "unique", "passed": agree >= AGREEMENT_GOOD,
                   "detail": f"two starts of the fit agree to cosine {agree:.3f}"
                             + ("" if agree >= AGREEMENT_GOOD else
                                ": the components are not determined by the data (mixtures "
                                "that always occur together, or too few counts)")})
    checks.append({"name": "components independent", "passed": not covary,
                   "detail": ("no two components rise and fall together" if not covary else
                              "; ".join(f"component {i} follows component {j} (r = {r:.2f}): "
                                        "perhaps one material split in two" for i, j, r in covary))})
    s = np.asarray(rank["singular_values"])
    k = len(elements)
    above = int(np.sum(s > rank["noise_edge"]))
    checks.append({"name": "rank", "passed": rank["chosen"] == "noise" or abs(above - k) <= 1,
                   "detail": f"{above} singular values above the Poisson noise edge, {k} components"})
    weak = [i for i, x in enumerate(explained) if x < EXPLAINED_GOOD]
    checks.append({"name": "components explained", "passed": not weak,
                   "detail": ("every component explained by element lines and scatter" if not weak
                              else f"components {weak} explained below {EXPLAINED_GOOD:.0%}")})
    empty = [i for i, els in enumerate(elements) if not els]
    checks.append({"name": "components labelled", "passed": True,
                   "detail": ("every component carries element lines" if not empty else
                              f"components {empty} carry no element lines (scatter or background)")})
    if chi2_median is not None:
        checks.append({"name": "reconstruction", "passed": chi2_median <= CHI2_DOUBTFUL,
                       "detail": f"median reduced chi-square {chi2_median:.2f} of the pixels "
                                 "(Poisson noise gives about 1)"})
    quality = "good" if all(c["passed"] for c in checks) else "doubtful"
    return quality, checks


def _put(lw: Any, result: Decomposition) -> None:
    lw.put(LAYER, "components", result.components.astype(np.float32))
    lw.put(LAYER, "energies", result.energies)
    lw.put(LAYER, "edges", result.edges)
    attrs = {LAYER: result.to_dict()}
    if result.clustering is not None:
        cl = result.clustering
        for key in ("spectra", "pixels", "centres", "embedding", "sample_pixels", "sample_labels"):
            lw.put(CLASSES_LAYER, key, np.asarray(getattr(cl, key)))
        attrs[CLASSES_LAYER] = cl.to_dict()
    lw.commit(attrs)


def cluster(ds: DataStack | str | os.PathLike, n_classes: int | None = None, **kwargs: Any) -> Clustering:
    """Material classes of pixels from their component abundances (see :func:`decompose`).

    Parameters
    ----------
    ds : DataStack or path
        A calibrated datastack.
    n_classes : int, optional
        Number of classes; by default chosen by BIC.
    **kwargs
        Passed to :func:`decompose` (``n_components``, ``store``, ``client``...).

    Returns
    -------
    Clustering
    """
    kwargs.pop("classes", None)  # the classes are what is asked for
    clustering = decompose(ds, n_classes=n_classes, classes=True, **kwargs).clustering
    if clustering is None:  # decompose always classifies when classes=True
        raise RuntimeError("decompose returned no classes")
    return clustering


