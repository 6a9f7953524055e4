"""Classical solvers on alphamatting.com images: accuracy, seconds per image, and our overhead.

For each method and trimap set, every image is solved twice in the same process, alternating the order:
once through ``matting.run`` (validation, conversion, memory monitor included) and once by calling
pymatting directly on pre-converted float64 arrays with the same arguments. The ratio of the summed
times is our overhead (target ≤ 1.05).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .. import io, metrics
from ..paths import PROJECT_ROOT
from ..registry import get
from ..runner import run

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "alphamatting_dev"
METHODS = ("closed_form", "knn", "large_kernel", "random_walk", "learning_based", "shared_sampling")


def direct_call(method_id: str, params: dict):
    """The pymatting call our adapter makes, written out by hand as the reference."""
    from .. import _pymatting as pm

    cg = {"maxiter": params.get("max_iterations"), "rtol": params.get("tolerance")}
    calls = {
        "closed_form": lambda i, t: pm.estimate_alpha_cf(
            i, t, laplacian_kwargs={"epsilon": params.get("epsilon"), "radius": params.get("radius")}, cg_kwargs=cg),
        "knn": lambda i, t: pm.estimate_alpha_knn(
            i, t, laplacian_kwargs={"n_neighbors": [params.get("neighbors"), params.get("far_neighbors")],
                                    "distance_weights": [2.0, 0.1]}, cg_kwargs=cg),
        "large_kernel": lambda i, t: pm.estimate_alpha_lkm(
            i, t, laplacian_kwargs={"epsilon": params.get("epsilon"), "radius": params.get("radius")}, cg_kwargs=cg),
        "random_walk": lambda i, t: pm.estimate_alpha_rw(
            i, t, laplacian_kwargs={"sigma": params.get("sigma"), "radius": params.get("radius")}, cg_kwargs=cg),
        "learning_based": lambda i, t: pm.estimate_alpha_lbdm(
            i, t, laplacian_kwargs={"epsilon": params.get("epsilon"), "radius": params.get("radius")}, cg_kwargs=cg),
        "shared_sampling": lambda i, t: pm.estimate_alpha_sm(
            i, t, return_foreground_background=True,
            trimap_expansion_radius=params.get("expansion_radius"),
            trimap_expansion_threshold=params.get("expansion_threshold"),
            sample_gathering_angles=params.get("search_directions"))[0],
    }
    return calls[method_id]


def bench_method(method_id: str, samples: list, trimap_set: str) -> dict:
    spec = get(method_id)
    defaults = {p.name: p.default for p in spec.params}
    reference = direct_call(method_id, defaults)
    ours_seconds = direct_seconds = outside_solver_seconds = 0.0
    scores = []
    for index, (name, image, trimaps, gt) in enumerate(samples):
        trimap = trimaps[trimap_set]
        image64, trimap64 = image.astype(np.float64), trimap.astype(np.float64) / 255.0
        order = ("ours", "direct") if index % 2 == 0 else ("direct", "ours")
        for who in order:
            if who == "ours":
                start = time.perf_counter()
                result = run(method_id, image, trimap=trimap, foreground="none")
                wall = time.perf_counter() - start
                ours_seconds += wall
                outside_solver_seconds += wall - result.timings["alpha"]
                alpha = result.alpha
            else:
                start = time.perf_counter()
                direct_alpha = reference(image64, trimap64)
                direct_seconds += time.perf_counter() - start
        unknown = trimap == 128  # known pixels: ours keep the trimap value (see classical.keep_known_pixels)
        if np.abs(alpha - np.clip(direct_alpha, 0, 1))[unknown].max() > 1e-4:
            raise AssertionError(f"{method_id} on {name}: our alpha differs from pymatting's direct call")
        scores.append(metrics.all_metrics(alpha, gt, trimap=trimap))
    count = len(samples)
    return {
        "method": method_id, "trimap": trimap_set,
        **{k: float(np.mean([s[k] for s in scores])) for k in metrics.METRIC_NAMES},
        "ours_s": ours_seconds / count, "direct_s": direct_seconds / count,
        "ratio": ours_seconds / direct_seconds,
        # Validation, conversion and measuring around the solver: deterministic, unlike the ratio,
        # which on a shared machine also carries the solver's own run-to-run noise.
        "overhead_ms": 1000 * outside_solver_seconds / count,
    }


def load_samples(data: Path, limit: int | None):
    names = sorted(p.name for p in (data / "input").glob("*.png"))[:limit]
    samples = []
    for name in names:
        image = io.load_image(data / "input" / name)
        trimaps = {t: io.load_trimap(data / t / name, image.shape) for t in ("trimap1", "trimap2")}
        samples.append((name, image, trimaps, io.load_alpha(data / "gt" / name, image.shape)))
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench classical", description=__doc__)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--limit", type=int, help="only the first N images")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "input").is_dir():
        print(f"No benchmark data at {data} (expected input/, trimap1/, trimap2/, gt/).")
        return 2
    samples = load_samples(data, args.limit)
    # Warm-up: numba kernels load from the cache on first use; keep that out of the timings.
    name, image, trimaps, _ = samples[0]
    for method_id in args.methods:
        run(method_id, image[:64, :64], trimap=trimaps["trimap1"][:64, :64], foreground="none") \
            if (trimaps["trimap1"][:64, :64] == 128).any() else None
    print(f"{len(samples)} images from {data}, {len(args.methods)} methods; SAD/Grad/Conn ×10³, MSE ×10⁻³\n")
    header = f"{'method':<16}{'trimap':<9}{'SAD':>8}{'MSE':>8}{'Grad':>8}{'Conn':>8}{'ours s':>9}{'pymatting s':>13}{'ratio':>7}{'ours outside solver ms':>24}"
    print(header)
    print("-" * len(header))
    for method_id in args.methods:
        for trimap_set in ("trimap1", "trimap2"):
            row = bench_method(method_id, samples, trimap_set)
            print(f"{row['method']:<16}{row['trimap']:<9}{row['sad']:>8.2f}{row['mse']:>8.2f}{row['grad']:>8.2f}"
                  f"{row['conn']:>8.2f}{row['ours_s']:>9.2f}{row['direct_s']:>13.2f}{row['ratio']:>7.3f}"
                  f"{row['overhead_ms']:>24.1f}", flush=True)
    return 0
