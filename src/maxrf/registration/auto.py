"""Automatic multimodal registration of a scan image onto a photograph.

Three stages, coarse to fine:

1. **Search** (:func:`coarse_search`): on a small version of the photo (longest side about
   200 pixels), the scan image resized to every scale from "the scan fills the photo" down
   to an eighth of it (6 % steps), at rotations -4, 0, +4 degrees, is matched against each
   photo channel (absorbance of grey, R, G, B) by normalised cross-correlation at every
   position (|NCC|: pigments darken the photo where the scan counts are high), once as
   they are and once high-passed (edges and strokes only). The photo may show far more
   than the scanned area, a grey card, a table.
2. **Similarity, then affine** (SimpleITK, Mattes mutual information, regular-step
   gradient descent, two-level pyramid) from the best few candidates of the search; the
   candidate with the best metric wins.
3. **Projective** refinement by direct optimisation (Powell over displacement modes of the
   four scan corners; SimpleITK has no 2-D projective transform) of the colour fit
   (:class:`FitMetric`): the photo's absorbances regressed on the scan images kept
   separate (the sum image and 32 channel bands, or element maps), whose span holds the
   pigments' near-linear contributions; the photo is used at about two pixels per scan
   pixel, smoothed to the scan's resolution.

Mutual information copes with the unknown, non-linear and non-monotonic relation between
counts and colours; normalising each candidate window copes with uneven light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import affine_transform, gaussian_filter, map_coordinates, spline_filter

from maxrf.registration import homography as hg
from maxrf.registration.sampling import interleave, sample_cubic

__all__ = ["Candidate", "coarse_search", "FitMetric", "MIMetric", "refine_local", "refine_projective",
           "refine_sitk"]

_BINS = 32
_COARSE_SIDE = 160
#: most scan pixels the fine metric samples
_MAX_SAMPLES = 20000


@dataclass
class Candidate:
    """A pose found by the coarse search (or refined)."""

    score: float
    matrix: np.ndarray
    channel: int


def normalise(img: np.ndarray) -> np.ndarray:
    """Robust 0..1 scaling (0.5th..99.5th percentile); non-finite pixels become the median."""
    a = np.asarray(img, dtype=np.float64)
    ok = np.isfinite(a)
    if not ok.any():
        return np.zeros(a.shape, dtype=np.float32)
    a = np.where(ok, a, np.median(a[ok]))
    lo, hi = np.percentile(a, [0.5, 99.5])
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.float32)
    return np.clip((a - lo) / (hi - lo), 0, 1).astype(np.float32)


def photo_channels(rgb: np.ndarray) -> np.ndarray:
    """``(4, h, w)`` absorbances ``-log(I)`` of grey, R, G and B (Beer-Lambert: linear in pigment)."""
    out = np.empty((4, *rgb.shape[:2]), dtype=np.float32)  # in place: a large photo's copies add up
    np.matmul(rgb, np.array([0.2126, 0.7152, 0.0722], dtype=np.float32), out=out[0])
    out[1:] = np.moveaxis(rgb, 2, 0)
    np.clip(out, 1.0 / 512, 1.0, out=out)
    np.log(out, out=out)
    return np.negative(out, out=out)


def box_reduce(a: np.ndarray, f: int) -> np.ndarray:
    """Box-average the last two axes by ``f`` (edges dropped)."""
    if f <= 1:
        return a
    h, w = a.shape[-2] // f, a.shape[-1] // f
    a = a[..., : h * f, : w * f]
    return a.reshape(a.shape[:-2] + (h, f, w, f)).mean(axis=(-3, -1)).astype(np.float32)


def _rotate(img: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre; returns the image and the 3x3 (x, y) map rotated -> original."""
    h, w = img.shape
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    ct, st = math.cos(theta), math.sin(theta)
    r = np.array([[ct, -st], [st, ct]])
    m = np.eye(3)
    m[:2, :2] = r
    m[:2, 2] = c - r @ c
    # affine_transform works in (row, col): swap axes of m
    mrc = np.array([[m[1, 1], m[1, 0]], [m[0, 1], m[0, 0]]])
    orc = np.array([m[1, 2], m[0, 2]])
    out = affine_transform(img, mrc, offset=orc, order=1, mode="nearest")
    return out.astype(np.float32), m


def _resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, shape, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def coarse_search(scan: np.ndarray, chans: np.ndarray, factor: float, n_best: int = 3,
                  rotations_deg: tuple[float, ...] = (-4.0, 0.0, 4.0),
                  highpass: float = 0.0) -> list[Candidate]:
    """Exhaustive NCC search over scale, rotation and position (stage 1).

    Parameters
    ----------
    scan : numpy.ndarray
        ``(H, W)`` normalised scan image.
    chans : numpy.ndarray
        ``(k, h, w)`` photo channels at ``factor`` original photo pixels per pixel.
    factor : float
        Original photo pixels per pixel of ``chans``.
    n_best : int
        Distinct candidates returned, best first.
    highpass : float
        If > 0, the template and the photo lose variation slower than this share of the
        template's shorter side (Gaussian sigma) before matching: edges and strokes then
        drive the match, not a smooth background of the scan (paper filler, a
        concentration gradient) that the photo does not show.

    Returns
    -------
    list of Candidate
        ``matrix`` maps scan ``(col, row, 1)`` to original photo pixels.
    """
    from skimage.feature import match_template

    hs, ws = scan.shape
    k, h, w = chans.shape
    fc = max(1, int(math.ceil(max(h, w) / _COARSE_SIDE)))
    small = box_reduce(chans, fc)
    f = factor * fc
    _, h, w = small.shape
    s_max = min(w / ws, h / hs)  # scan pixels -> small pixels when the scan fills the photo
    scales = s_max / 1.07 ** np.arange(0, int(math.log(8) / math.log(1.07)) + 1)
    scales = scales[(scales * min(hs, ws) >= 10)]
    found: list[tuple[float, float, float, int, float, float, int, int]] = []
    for theta_deg in rotations_deg:
        theta = math.radians(theta_deg)
        rot = [_rotate(small[c], theta)[0] for c in range(k)]
        filtered: dict[float, list[np.ndarray]] = {}
        for s in scales:
            th, tw = max(2, int(round(hs * s))), max(2, int(round(ws * s)))
            if th >= h or tw >= w:
                continue
            tmpl = _resize(scan, (th, tw))
            images = rot
            if highpass > 0:
                # sigma on a 10 % grid: the photo's filtered channels serve several scales
                sigma = round(float(np.exp(round(np.log(highpass * min(th, tw)) / 0.1) * 0.1)), 3)
                tmpl = highpass_filter(tmpl, sigma)
                if sigma not in filtered:
                    filtered[sigma] = [highpass_filter(r, sigma) for r in rot]
                images = filtered[sigma]
            if tmpl.std() == 0:
                continue
            for c in range(k):
                r = np.abs(match_template(images[c], tmpl))
                i, j = np.unravel_index(int(np.argmax(r)), r.shape)
                found.append((float(r[i, j]), theta, s, c, i, j, th, tw))
    found.sort(key=lambda t: -t[0])
    out: list[Candidate] = []
    for score, theta, s, c, i, j, th, tw in found:
        m = _candidate_matrix(theta, s, i, j, th, tw, hs, ws, small.shape[1:], f)
        centre = hg.apply(m, np.array([[(ws - 1) / 2, (hs - 1) / 2]]))[0]
        if any(np.linalg.norm(centre - hg.apply(o.matrix, np.array([[(ws - 1) / 2, (hs - 1) / 2]]))[0])
               < 0.1 * s * ws * f and abs(np.log(_scale(o.matrix) / (s * f))) < 0.15 for o in out):
            continue
        out.append(Candidate(score=score, matrix=m, channel=c))
        if len(out) >= n_best:
            break
    return out


def _scale(m: np.ndarray) -> float:
    return float(math.sqrt(abs(np.linalg.det(m[:2, :2]))))


def _candidate_matrix(theta: float, s: float, i: int, j: int, th: int, tw: int, hs: int, ws: int,
                      small_shape: tuple[int, int], f: float) -> np.ndarray:
    """Scan -> original photo matrix of a match of the resized template at (i, j) in the rotated image."""
    sy, sx = th / hs, tw / ws
    # scan (col, row) -> template pixel: (col + 0.5) * sx - 0.5; then + (j, i) in the rotated image
    to_rot = np.array([[sx, 0, 0.5 * sx - 0.5 + j], [0, sy, 0.5 * sy - 0.5 + i], [0, 0, 1]])
    h, w = small_shape
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    ct, st = math.cos(theta), math.sin(theta)
    r = np.eye(3)
    r[:2, :2] = [[ct, -st], [st, ct]]
    r[:2, 2] = c - r[:2, :2] @ c
    to_orig = np.array([[f, 0, (f - 1) / 2], [0, f, (f - 1) / 2], [0, 0, 1]])
    return to_orig @ r @ to_rot


# --------------------------------------------------------------------- SimpleITK stage
def _threads() -> int:
    """Threads for SimpleITK: the cores this process may use, at most 4 (beyond, no gain here)."""
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def _sitk_images(scan: np.ndarray, moving: np.ndarray, f: float):
    import SimpleITK as sitk  # noqa: N813 - the library's documented alias

    fixed = sitk.GetImageFromArray(np.ascontiguousarray(scan, dtype=np.float32))
    mov = sitk.GetImageFromArray(np.ascontiguousarray(moving, dtype=np.float32))
    mov.SetSpacing((float(f), float(f)))
    mov.SetOrigin(((f - 1) / 2.0, (f - 1) / 2.0))
    return fixed, mov


def refine_sitk(scan: np.ndarray, moving: np.ndarray, f: float, matrix: np.ndarray,
                kind: str = "similarity") -> tuple[np.ndarray, float]:
    """Mattes-MI refinement of a similarity or affine transform with SimpleITK (stage 2).

    Parameters
    ----------
    scan : numpy.ndarray
        ``(H, W)`` normalised scan image (fixed).
    moving : numpy.ndarray
        ``(h, w)`` photo channel at ``f`` original photo pixels per pixel.
    matrix : numpy.ndarray
        Initial scan -> photo matrix (its affine part is used).
    kind : {'similarity', 'affine'}

    Returns
    -------
    matrix : numpy.ndarray
        Refined affine matrix.
    metric : float
        Final Mattes metric (negative mutual information; lower is better).
    """
    import SimpleITK as sitk  # noqa: N813 - the library's documented alias

    fixed, mov = _sitk_images(scan, moving, f)
    hs, ws = scan.shape
    c = np.array([(ws - 1) / 2, (hs - 1) / 2])
    a = matrix[:2, :2] / matrix[2, 2]
    b = matrix[:2, 2] / matrix[2, 2]
    t = a @ c + b - c
    if kind == "similarity":
        sc = _scale(a)
        ang = math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1])
        tx = sitk.Similarity2DTransform(sc, ang, tuple(t), tuple(c))
    else:
        tx = sitk.AffineTransform(2)
        tx.SetCenter(tuple(c))
        tx.SetMatrix(tuple(a.ravel()))
        tx.SetTranslation(tuple(t))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=_BINS)
    if scan.size > _MAX_SAMPLES:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(_MAX_SAMPLES / scan.size, 1)  # fixed seed: repeatable
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetNumberOfThreads(_threads())
    step = _scale(a)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=step, minStep=1e-3 * step,
                                                 numberOfIterations=80, relaxationFactor=0.6,
                                                 gradientMagnitudeTolerance=1e-9)
    reg.SetOptimizerScalesFromPhysicalShift()
    # pyramid down to about 40 pixels: the capture range grows with the scan's size in pixels
    levels = max(1, int(math.log2(max(min(hs, ws) / 40, 1))) + 1)
    shrink = [2 ** k for k in range(levels, -1, -1)] if levels > 1 else [2, 1]
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel([k / 2.0 for k in shrink[:-1]] + [0.0])
    reg.SetInitialTransform(tx, inPlace=True)
    reg.Execute(fixed, mov)
    metric = float(reg.GetMetricValue())
    m = np.eye(3)
    if kind == "similarity":
        sc, ang = tx.GetScale(), tx.GetAngle()
        m[:2, :2] = sc * np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]])
    else:
        m[:2, :2] = np.array(tx.GetMatrix()).reshape(2, 2)
    tt = np.array(tx.GetTranslation())
    cc = np.array(tx.GetCenter())
    m[:2, 2] = cc + tt - m[:2, :2] @ cc
    return m, metric


# --------------------------------------------------------------------- projective stage
class MIMetric:
    """Mutual information of the scan image and a photo channel sampled through a matrix.

    Joint histogram of ``_BINS`` x ``_BINS`` bins; photo values go to two neighbouring bins
    with linear weights (Parzen window), so the metric is continuous in the matrix.
    """

    def __init__(self, scan: np.ndarray, moving: np.ndarray, f: float, mask: np.ndarray | None = None):
        self.shape = scan.shape
        self.pts = hg.scan_grid(scan.shape)
        keep = np.ones(len(self.pts), dtype=bool) if mask is None else np.asarray(mask).ravel()
        self.pts = self.pts[keep]
        self.fbin = np.minimum((scan.ravel()[keep] * _BINS).astype(int), _BINS - 1)
        self.moving = moving
        self.f = float(f)
        lo, hi = np.percentile(moving, [0.5, 99.5])
        self.lo, self.span = float(lo), float(max(hi - lo, 1e-6))

    def sample(self, matrix: np.ndarray, pts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Photo values at the scan pixels (and which fall inside the photo)."""
        xy = hg.apply(matrix, self.pts if pts is None else pts)
        xm = (xy - (self.f - 1) / 2) / self.f
        h, w = self.moving.shape
        inside = (xm[:, 0] >= 0) & (xm[:, 0] <= w - 1) & (xm[:, 1] >= 0) & (xm[:, 1] <= h - 1)
        v = map_coordinates(self.moving, [xm[:, 1], xm[:, 0]], order=1, mode="nearest")
        return v, inside

    def __call__(self, matrix: np.ndarray, shift: tuple[float, float] = (0.0, 0.0)) -> float:
        """Mutual information (nats); ``shift`` moves the scan grid (scan pixels) first."""
        pts = self.pts + np.asarray(shift, dtype=float)
        v, inside = self.sample(matrix, pts)
        if inside.sum() < 0.5 * len(inside):
            return 0.0
        return _mi(self.fbin[inside], v[inside], self.lo, self.span)


def _mi(fbin: np.ndarray, v: np.ndarray, lo: float, span: float) -> float:
    x = np.clip((v - lo) / span, 0, 1) * (_BINS - 1)
    i0 = np.minimum(x.astype(int), _BINS - 2)
    wt = x - i0
    joint = np.bincount(fbin * _BINS + i0, weights=1 - wt, minlength=_BINS * _BINS)
    joint += np.bincount(fbin * _BINS + i0 + 1, weights=wt, minlength=_BINS * _BINS)
    joint = joint.reshape(_BINS, _BINS) / len(v)
    pf = joint.sum(axis=1, keepdims=True)
    pm = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pf @ pm)[nz])).sum())


def refine_projective(metric: MIMetric, matrix: np.ndarray, scale: float, *,
                      projective: bool = True) -> np.ndarray:
    """Maximise a metric over the four corner displacements (stage 3).

    Parameters
    ----------
    metric : FitMetric or MIMetric
        Called with a matrix; higher is better.
    matrix : numpy.ndarray
        Starting matrix.
    scale : float
        Photo pixels per scan pixel (the parameters move corners in scan pixels).
    projective : bool
        Free all 8 corner coordinates; otherwise only a translation (2 parameters).
    """
    from scipy.optimize import minimize

    shape = metric.shape
    # parameters: displacement modes of the four corners (scan pixels), not the corners
    # themselves: translation, x- and y-gradients (scale, rotation, shear) and twist
    # (perspective) per axis are nearly decoupled in the metric, the corners are not, and
    # Powell's line searches along coupled coordinates stall short of the optimum
    modes = _corner_modes() if projective else np.tile(np.eye(2), (4, 1))

    def cost(p: np.ndarray) -> float:
        return -metric(hg.corners_matrix(shape, matrix, modes @ p * scale))

    n = modes.shape[1]
    x = np.zeros(n)
    for _ in range(3 if projective else 1):
        res = minimize(cost, x, method="Powell", bounds=[(-3, 3)] * n,
                       options={"xtol": 1e-2, "ftol": 1e-8, "maxfev": 500 if projective else 150})
        moved = float(np.abs(modes @ (res.x - x)).max())
        x = res.x
        if moved < 0.02:  # converged: a restart no longer moves any corner
            break
    return hg.corners_matrix(shape, matrix, modes @ x * scale)


def refine_local(metric: FitMetric, matrix: np.ndarray, scale: float, step: float = 0.1,
                 max_iter: int = 6) -> np.ndarray:
    """Maximise a smooth metric over the four corner displacements from a start near its optimum.

    Newton's method on a quadratic model of the metric measured around the current point
    (central differences of ``step`` scan pixels along each of the 8 corner modes and one
    cross term per pair: 45 evaluations per iteration), each step halved until the metric
    improves. For a start within a pixel or so of the optimum of a metric smooth in the
    matrix (the colour fit samples a cubic spline), three to six iterations reach it
    (150-280 evaluations) where Powell's bracketing line searches
    (:func:`refine_projective`, which needs no start near the optimum) take six to nine
    hundred; on the 8000 x 6000 development photos its optimum was as high as Powell's.
    L-BFGS-B with difference gradients stalled on the nearly flat perspective modes.

    Parameters
    ----------
    metric : FitMetric
        Called with a matrix; higher is better.
    matrix : numpy.ndarray
        Starting matrix.
    scale : float
        Photo pixels per scan pixel.
    step : float
        Difference step (scan pixels).
    max_iter : int
        Most Newton steps.
    """
    shape = metric.shape
    modes = _corner_modes()
    n = modes.shape[1]

    def value(p: np.ndarray) -> float:
        return metric(hg.corners_matrix(shape, matrix, modes @ p * scale))

    x = np.zeros(n)
    f0 = value(x)
    eye = np.eye(n) * step
    for _ in range(max_iter):
        fp = np.array([value(x + e) for e in eye])
        fm = np.array([value(x - e) for e in eye])
        grad = (fp - fm) / (2 * step)
        hess = np.diag((fp + fm - 2 * f0) / step ** 2)
        for i in range(n):
            for j in range(i + 1, n):
                hess[i, j] = hess[j, i] = (value(x + eye[i] + eye[j]) - fp[i] - fp[j] + f0) / step ** 2
        w, v = np.linalg.eigh(hess)
        # ascent direction: Newton along clearly curved-down directions; along nearly
        # flat or curved-up ones (poorly constrained perspective modes) the gradient,
        # scaled by the weakest clear curvature, the step bound and the halving keep it safe
        floor = 1e-3 * float(np.abs(w).max())
        d = v @ (-(v.T @ grad) / np.minimum(w, -floor))
        d *= min(1.0, 1.0 / max(float(np.abs(modes @ d).max()), 1e-12))  # at most a pixel per step
        for _ in range(6):
            f1 = value(x + d)
            if f1 > f0:
                break
            d = d / 2
        else:
            break
        x, f0 = x + d, f1
        if float(np.abs(modes @ d).max()) < 0.01:
            break
    return hg.corners_matrix(shape, matrix, modes @ x * scale)


def _corner_modes() -> np.ndarray:
    """``(8, 8)``: columns are corner displacement patterns (x then y of corners 0..3)."""
    signs = np.array([[1, 1, 1, 1], [-1, 1, 1, -1], [-1, -1, 1, 1], [1, -1, 1, -1]], dtype=float)
    modes = np.zeros((8, 8))
    for axis in (0, 1):
        for j, sg in enumerate(signs):
            modes[axis::2, 4 * axis + j] = sg
    return modes


def spline_coefficients(channels: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients of each ``(k, h, w)`` channel (float32: half the memory)."""
    return np.stack([spline_filter(ch, order=3, output=np.float32) for ch in channels])


def smooth_for_scan(moving: np.ndarray, pixels_per_scan_pixel: float) -> np.ndarray:
    """Blur a photo channel to about a scan pixel's footprint (sigma 0.4 scan pixel)."""
    sigma = 0.4 * pixels_per_scan_pixel
    return gaussian_filter(moving, sigma) if sigma > 0.5 else moving


def highpass_filter(img: np.ndarray, sigma: float) -> np.ndarray:
    """Remove variation slower than ``sigma`` pixels (uneven light, scatter background)."""
    return (img - gaussian_filter(img, sigma, mode="nearest")).astype(np.float32)


class FitMetric:
    """Share of variance explained between scan image(s) and photo colours under a matrix.

    One scan image: it is fitted by least squares with a quadratic polynomial of the photo
    absorbances (R, G, B) sampled at the scan pixel centres. Several scan images (element
    maps): the photo absorbances are fitted with the maps and their squares. Both fits
    include a quadratic polynomial of the position, which absorbs uneven light and slow
    changes of the scatter background. The metric is the R^2 of the fit. Beer-Lambert makes
    absorbance nearly linear in pigment amounts and counts are linear in element amounts,
    so the relation is close to this model while no colour is assumed; unlike a histogram
    estimate of mutual information it is smooth in the matrix and stable enough for
    sub-pixel work.

    ``moving``: the ``(k, h, w)`` photo channels at ``f`` original photo pixels per pixel,
    or with ``prefiltered`` their cubic spline coefficients already interleaved ``(h, w,
    k)`` (:func:`maxrf.registration.sampling.interleave`).
    """

    def __init__(self, scan: np.ndarray, moving: np.ndarray, f: float, mask: np.ndarray | None = None,
                 partial: bool = False, prefiltered: bool = False, max_samples: int = _MAX_SAMPLES):
        self.partial = partial
        scan = scan if scan.ndim == 3 else scan[None]
        self.shape = scan.shape[1:]
        pts = hg.scan_grid(self.shape)
        keep = np.ones(len(pts), dtype=bool) if mask is None else np.asarray(mask).ravel().copy()
        if keep.sum() > max_samples:  # large scans: a fixed random subset is as precise, far faster
            idx = np.flatnonzero(keep)
            keep[:] = False
            keep[np.random.default_rng(0).choice(idx, max_samples, replace=False)] = True
        self.pts = pts[keep]
        self.full = scan
        self.s = scan.reshape(len(scan), -1)[:, keep].T.astype(np.float64)
        u = (self.pts - self.pts.mean(axis=0)) / (self.pts.std(axis=0) + 1e-9)
        self.pos = np.column_stack([np.ones(len(u)), u, u ** 2, u[:, 0] * u[:, 1]])
        # cubic B-spline coefficients: the metric is smooth in the matrix; interleaved
        # (h, w, k) for the compiled sampler
        self.moving = moving if prefiltered else interleave(spline_coefficients(moving))
        self.f = float(f)
        self._basis_all: np.ndarray | None = None
        self._pos_basis_all: np.ndarray | None = None

    def _sample(self, matrix: np.ndarray, shift: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Photo channels ``(n, 3)`` at the sampled scan pixels (and which fall inside)."""
        xy = hg.apply(matrix, self.pts + np.asarray(shift, dtype=float))
        xm = (xy - (self.f - 1) / 2) / self.f
        h, w, _ = self.moving.shape
        inside = (xm[:, 0] >= 0) & (xm[:, 0] <= w - 1) & (xm[:, 1] >= 0) & (xm[:, 1] <= h - 1)
        return sample_cubic(self.moving, xm[:, 0], xm[:, 1]), inside

    def colour_images(self, matrix: np.ndarray) -> np.ndarray:
        """``(3, H, W)``: the photo's absorbances predicted from the scan images at ``matrix``.

        The several-image fit's coefficients, applied to every scan pixel without the
        position trend: three images that carry what the scan says about the photo's
        colours, for fits on small windows where tens of separate images would overfit.
        """
        x, inside = self._sample(matrix, (0.0, 0.0))
        sc = self.s[inside]
        mu, sd = sc.mean(axis=0), sc.std(axis=0) + 1e-9
        z = (sc - mu) / sd
        a = np.column_stack([self.pos[inside], z, z ** 2])
        coef = np.linalg.lstsq(a, x[inside], rcond=None)[0][self.pos.shape[1]:]
        flat = self.full.reshape(len(self.full), -1)
        out = np.empty((coef.shape[1], flat.shape[1]), dtype=np.float32)
        for a in range(0, flat.shape[1], 1 << 16):  # in pieces: bounded memory on large scans
            zf = (flat[:, a: a + (1 << 16)].T - mu) / sd
            out[:, a: a + len(zf)] = (np.column_stack([zf, zf ** 2]) @ coef).T
        return out.reshape((-1, *self.shape))

    def __call__(self, matrix: np.ndarray, shift: tuple[float, float] = (0.0, 0.0)) -> float:
        x, inside = self._sample(matrix, shift)
        if inside.mean() < 0.5:
            return 0.0
        x = x[inside]
        x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
        if self.s.shape[1] == 1:
            iu = np.triu_indices(x.shape[1])
            quad = (x[:, :, None] * x[:, None, :])[:, iu[0], iu[1]]
            basis = _basis(np.column_stack([self.pos[inside], x, quad]))
            y = self.s[inside]
        else:
            # the regressors (scan images, position) do not move with the matrix: their
            # orthonormal basis is computed once for the usual case of every pixel inside
            basis = self._scan_basis(inside)
            y = x
        return self._r2(basis, y - y.mean(axis=0), inside)

    def _scan_basis(self, inside: np.ndarray) -> np.ndarray:
        if inside.all() and self._basis_all is not None:
            return self._basis_all
        sc = self.s[inside]
        sc = (sc - sc.mean(axis=0)) / (sc.std(axis=0) + 1e-9)
        basis = _basis(np.column_stack([self.pos[inside], sc, sc ** 2]))
        if inside.all():
            self._basis_all = basis
        return basis

    def _r2(self, basis: np.ndarray, y: np.ndarray, inside: np.ndarray) -> float:
        """Share of ``y``'s variance in the span of ``basis`` (partial: beyond the position trend)."""
        yy = max(float((y * y).sum()), 1e-12)
        r2 = float(((basis.T @ y) ** 2).sum()) / yy
        if not self.partial:
            return r2
        # share of what the smooth position trend leaves that the colours explain
        if inside.all():
            if self._pos_basis_all is None:
                self._pos_basis_all = _basis(self.pos)
            pb = self._pos_basis_all
        else:
            pb = _basis(self.pos[inside])
        base = float(((pb.T @ y) ** 2).sum()) / yy
        return (r2 - base) / max(1 - base, 1e-12)


def _basis(a: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space of ``a`` (columns below 1e-9 of the largest dropped)."""
    u, sv, _ = np.linalg.svd(a, full_matrices=False)
    return u[:, sv > 1e-9 * sv[0]] if sv.size and sv[0] > 0 else u[:, :0]
