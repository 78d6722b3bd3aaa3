"""SpeckleAtlas height scan vs the seed's algorithm, same map, same process.

Map: 1000 x 1000 synthetic peak map (smooth paper background + unit Gaussian noise + 400
Gaussian speckles), 100 heights.

- seed: for every height ``skimage.measure.label(map > h, connectivity=1)`` + ``regionprops``,
  then the largest area / its label / the number of regions from the props (the maxrf4u
  ``SpeckleAtlas.__init__``), and the seed's ``measure_speckles`` (label, relabel by area,
  regionprops with the intensity image, centroids from the props);
- maxrf: ``SpeckleAtlas(map, 100)`` (one union-find sweep) and ``measure_speckles()``.

The scan results are checked equal. Run from the repo root:
``python -m benchmarks.bench_speckles [size] [n_heights]``; writes
``benchmarks/results/speckles.json``.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from benchmarks.common import save, timed


def make_map(size: int = 1000, n_speckles: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rr = np.arange(size, dtype=float)[:, None]
    cc = np.arange(size, dtype=float)[None, :]
    m = 0.5 * np.sin(2 * np.pi * rr / size) * np.cos(3 * np.pi * cc / size)
    m = m + rng.normal(0.0, 1.0, (size, size))
    centres = rng.uniform(3, size - 3, (n_speckles, 2))
    for (r, c), s, a in zip(centres, rng.uniform(0.6, 1.5, n_speckles), rng.uniform(3, 30, n_speckles)):
        r0, r1 = int(r) - 6, int(r) + 7
        c0, c1 = int(c) - 6, int(c) + 7
        r0, c0 = max(r0, 0), max(c0, 0)
        m[r0:r1, c0:c1] += a * np.exp(-((rr[r0:r1] - r) ** 2 + (cc[:, c0:c1] - c) ** 2) / (2 * s**2))
    return m


def seed_scan(peak_map: np.ndarray, n_heights: int = 100):
    """The seed's SpeckleAtlas.__init__: label + regionprops at every height."""
    import skimage.measure as skm

    heights = np.linspace(peak_map.min(), peak_map.max(), n_heights)
    largest_areas, largest_labels, n_regions = [], [], []
    for h in heights:
        labels = skm.label(peak_map > h, connectivity=1)
        props = skm.regionprops(labels)
        n_regions.append(len(props))
        if props:
            areas = [p.area for p in props]
            i = int(np.argmax(areas))
            largest_areas.append(areas[i])
            largest_labels.append(props[i].label)
        else:
            largest_areas.append(0)
            largest_labels.append(0)
    return heights, np.array(largest_areas), np.array(largest_labels), np.array(n_regions)


def seed_measure(peak_map: np.ndarray, heights, largest_areas, max_area: int = 100):
    """The seed's measure_speckles (clip rule as in the seed), for the timing comparison."""
    import skimage.measure as skm

    i = int(np.argmin((np.array(largest_areas) - max_area) ** 2))
    clip = heights[i]
    unsorted = skm.label(peak_map > clip)
    props = skm.regionprops(unsorted)
    areas = np.array([p.area for p in props])
    order = np.argsort(areas)[::-1]
    # relabel by area (done with a lookup table: the fastest reading of the seed's step)
    lut = np.zeros(len(props) + 1, dtype=unsorted.dtype)
    lut[np.array([props[k].label for k in order], dtype=int)] = np.arange(1, len(order) + 1)
    relabel = lut[unsorted]
    props = skm.regionprops(relabel, intensity_image=peak_map)
    centroids = np.array([p.centroid for p in props])
    return clip, centroids


def main(size: int = 1000, n_heights: int = 100) -> dict:
    from maxrf.speckles import SpeckleAtlas, speckles_above_noise

    m = make_map(size)

    t_ours = []
    for _ in range(3):
        dt, atlas = timed(SpeckleAtlas, m, n_heights)
        t_ours.append(dt)
    t_ours_measure, _ = timed(atlas.measure_speckles, 100)
    t_props, props = timed(lambda: atlas.props)
    kept = speckles_above_noise(atlas, factor=5)

    t_seed, (heights, areas, labels, n_regions) = timed(seed_scan, m, n_heights)
    equal = bool(
        np.array_equal(heights, atlas.heights)
        and np.array_equal(areas, atlas.largest_areas)
        and np.array_equal(labels, atlas.largest_labels)
        and np.array_equal(n_regions, atlas.n_regions)
    )
    t_seed_measure, _ = timed(seed_measure, m, heights, areas, 100)

    scan_best = min(t_ours)
    return {
        "map_shape": [size, size],
        "n_heights": n_heights,
        "scan": {
            "maxrf_s": scan_best,
            "maxrf_runs_s": t_ours,
            "seed_s": t_seed,
            "speedup": t_seed / scan_best,
            "results_equal": equal,
        },
        "measure_speckles": {
            "maxrf_s": t_ours_measure,
            "maxrf_props_first_access_s": t_props,
            "seed_s": t_seed_measure,
        },
        "total": {
            "maxrf_s": scan_best + t_ours_measure,
            "seed_s": t_seed + t_seed_measure,
            "speedup": (t_seed + t_seed_measure) / (scan_best + t_ours_measure),
        },
        "n_speckles": atlas.n_speckles,
        "n_props": len(props),
        "n_speckles_above_5_noise": int(kept.size),
        "clip_height": atlas.clip_height,
        "targets": {"maxrf_scan_s": "a few seconds at 1000x1000, 100 heights"},
    }


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    nh = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    res = main(size, nh)
    print(save("speckles", res))
    print(json.dumps(res, indent=2, default=float))
