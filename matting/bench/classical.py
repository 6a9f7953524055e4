"""Classical solvers on alphamatting.com images: accuracy and seconds per image against pymatting.

Default (solver comparison): for closed-form, learning-based and random-walk matting every image is
solved twice through ``matting.run`` in the same process, alternating the order: with
``solver="pymatting"`` (pymatting's own preconditioner, CG and constraints; the reference) and with our
default ``solver="auto"`` (matting.solvers). Per image it prints SAD and seconds of both, the SAD change
and the time ratio, and whether pymatting's incomplete Cholesky printed 'PERFORMANCE WARNING'
(a failed factorisation retried with a larger shift); then the median ratio. Targets: ratio ≤ 0.5 on the
median, SAD no higher than the reference's (+0.5 %) on every image, no warning on our side.
Trimap sets: ``trimap1``, ``trimap2`` and ``strokes`` (strokes-only input made by thinning trimap1's
known regions to about 10 % of the pixels, see :func:`strokes_from_trimap`).

``--overhead``: every image is solved twice in the same process, alternating the order: once through
``matting.run`` (validation, conversion, memory monitor included) and once by calling pymatting
directly on pre-converted float64 arrays with the same arguments. The ratio of the summed times is
our overhead (target ≤ 1.05). Methods with a ``solver`` parameter run with ``solver="pymatting"`` here.
"""
from __future__ import annotations

import argparse
import contextlib
import io as _stdio
import time
from pathlib import Path

import numpy as np

from .. import io, metrics
from ..paths import PROJECT_ROOT
from ..registry import get
from ..runner import run

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "alphamatting_dev"
METHODS = ("closed_form", "knn", "large_kernel", "random_walk", "learning_based", "shared_sampling")
SOLVER_METHODS = ("closed_form", "learning_based", "random_walk")  # those with a 'solver' parameter
TRIMAP_SETS = ("trimap1", "trimap2", "strokes")


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


def strokes_from_trimap(trimap: np.ndarray, fraction: float = 0.10) -> np.ndarray:
    """Strokes-only input from a trimap: its known regions thinned to about ``fraction`` of the pixels.

    Each known region (foreground, background) is skeletonised and the skeleton widened by a disc of
    the smallest radius at which both strokes together cover ``fraction`` of the image; strokes stay
    inside their region. Returned in the trimap encoding (255 / 0 on strokes, 128 elsewhere).
    """
    import cv2
    from skimage.morphology import skeletonize

    skeletons = {v: skeletonize(trimap == v).astype(np.uint8) for v in (0, 255)}
    for radius in range(1, 100):
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        strokes = {v: cv2.dilate(skeletons[v], disc).astype(bool) & (trimap == v) for v in (0, 255)}
        if sum(m.sum() for m in strokes.values()) >= fraction * trimap.size:
            break
    out = np.full(trimap.shape, 128, np.uint8)
    for value, mask in strokes.items():
        out[mask] = value
    return out


def _timed_run(method_id: str, image, trimap, **params):
    """(alpha, seconds, printed 'PERFORMANCE WARNING') of one run through matting.run."""
    printed = _stdio.StringIO()
    with contextlib.redirect_stdout(printed):
        start = time.perf_counter()
        result = run(method_id, image, trimap=trimap, foreground="none", **params)
        seconds = time.perf_counter() - start
    return result.alpha, seconds, "PERFORMANCE WARNING" in printed.getvalue()


def compare_solvers(method_id: str, samples: list, trimap_set: str, solver: str = "auto",
                    reference: bool = True, on_row=None) -> list[dict]:
    """Per image: reference (solver='pymatting') and ours (``solver``), interleaved, same process.

    ``reference=False`` runs ours only (the reference's fields are None); ``on_row(row)`` is called
    as each image finishes, so a long run shows its rows as it goes.
    """
    rows = []
    for index, (name, image, trimaps, gt) in enumerate(samples):
        trimap = trimaps[trimap_set]
        order = (("pymatting", "ours"), ("ours", "pymatting"))[index % 2] if reference else ("ours",)
        got = {}
        for who in order:
            got[who] = _timed_run(method_id, image, trimap, solver="pymatting" if who == "pymatting" else solver)
        sad = {who: metrics.sad(got[who][0], gt, trimap=trimap) for who in got}
        row = {"image": name, "unknown": int((trimap == 128).sum()), "sad": sad["ours"], "s": got["ours"][1],
               "warn": got["ours"][2], "sad_ref": None, "sad_change": None, "s_ref": None, "ratio": None,
               "warn_ref": None}
        if reference:
            row.update(sad_ref=sad["pymatting"], s_ref=got["pymatting"][1], warn_ref=got["pymatting"][2],
                       sad_change=100.0 * (sad["ours"] - sad["pymatting"]) / max(sad["pymatting"], 1e-12),
                       ratio=got["ours"][1] / got["pymatting"][1])
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


def print_comparison_header(method_id: str, trimap_set: str) -> None:
    print(f"\n{method_id}, {trimap_set}: pymatting's solver vs ours (SAD ×10³, seconds)")
    header = (f"{'image':<10}{'unknown':>9}{'SAD ref':>10}{'SAD ours':>10}{'ΔSAD %':>8}{'s ref':>8}"
              f"{'s ours':>8}{'ratio':>7}  warnings ref/ours")
    print(header)
    print("-" * len(header), flush=True)


def print_comparison_row(r: dict) -> None:
    def number(value, fmt):
        return "—" if value is None else format(value, fmt)

    warn_ref = "·" if r["warn_ref"] is None else "W" if r["warn_ref"] else "-"
    print(f"{r['image'][:-4]:<10}{r['unknown']:>9}{number(r['sad_ref'], '.3f'):>10}{r['sad']:>10.3f}"
          f"{number(r['sad_change'], '+.2f'):>8}{number(r['s_ref'], '.2f'):>8}{r['s']:>8.2f}"
          f"{number(r['ratio'], '.3f'):>7}  {warn_ref}/{'W' if r['warn'] else '-'}", flush=True)


def print_comparison_summary(rows: list[dict]) -> None:
    compared = [r for r in rows if r["ratio"] is not None]
    print(f"median s ours {np.median([r['s'] for r in rows]):.2f}; warnings ours {sum(r['warn'] for r in rows)}",
          flush=True)
    if not compared:
        return
    ratios = np.array([r["ratio"] for r in compared])
    worse = [r["image"][:-4] for r in compared if r["sad_change"] > 0.5]
    print(f"median ratio {np.median(ratios):.3f} (min {ratios.min():.3f}, max {ratios.max():.3f}); "
          f"median s ref {np.median([r['s_ref'] for r in compared]):.2f}, "
          f"ours {np.median([r['s'] for r in compared]):.2f}; "
          f"SAD > +0.5 %: {', '.join(worse) or 'none'}; warnings ref {sum(r['warn_ref'] for r in compared)}, "
          f"ours {sum(r['warn'] for r in compared)}", flush=True)


def bench_method(method_id: str, samples: list, trimap_set: str) -> dict:
    spec = get(method_id)
    defaults = {p.name: p.default for p in spec.params}
    reference = direct_call(method_id, defaults)
    pin = {"solver": "pymatting"} if "solver" in defaults else {}  # the direct call is pymatting's solver
    ours_seconds = direct_seconds = outside_solver_seconds = 0.0
    scores = []
    for index, (name, image, trimaps, gt) in enumerate(samples):
        trimap = trimaps[trimap_set]
        image64, trimap64 = image.astype(np.float64), trimap.astype(np.float64) / 255.0
        order = ("ours", "direct") if index % 2 == 0 else ("direct", "ours")
        for who in order:
            if who == "ours":
                start = time.perf_counter()
                result = run(method_id, image, trimap=trimap, foreground="none", **pin)
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


def load_samples(data: Path, limit: int | None, images=None):
    names = sorted(p.name for p in (data / "input").glob("*.png"))[:limit]
    if images:
        names = [n for n in names if n[:-4] in images or n in images]
    samples = []
    for name in names:
        image = io.load_image(data / "input" / name)
        trimaps = {t: io.load_trimap(data / t / name, image.shape) for t in ("trimap1", "trimap2")}
        trimaps["strokes"] = strokes_from_trimap(trimaps["trimap1"])
        samples.append((name, image, trimaps, io.load_alpha(data / "gt" / name, image.shape)))
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench classical", description=__doc__)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--methods", nargs="+", choices=METHODS,
                        help=f"default: {' '.join(SOLVER_METHODS)} (comparison), all (--overhead)")
    parser.add_argument("--trimaps", nargs="+", default=list(TRIMAP_SETS), choices=TRIMAP_SETS,
                        help="trimap sets for the solver comparison")
    parser.add_argument("--solver", default="auto", choices=("auto", "direct", "multigrid", "ichol"),
                        help="our solver set-up compared against pymatting's")
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--images", nargs="+", help="only these images (e.g. GT04 GT14)")
    parser.add_argument("--no-reference", action="store_true",
                        help="solver comparison: our solver only (time, SAD, warnings), without pymatting's")
    parser.add_argument("--overhead", action="store_true",
                        help="our overhead against direct pymatting calls instead of the solver comparison")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "input").is_dir():
        print(f"No benchmark data at {data} (expected input/, trimap1/, trimap2/, gt/).")
        return 2
    samples = load_samples(data, args.limit, args.images)
    if not args.overhead:
        methods = [m for m in (args.methods or SOLVER_METHODS) if m in SOLVER_METHODS]
        _, image, trimaps, _ = samples[0]
        crop = np.s_[::8, ::8]  # the whole image at 1/8 scale: all three trimap regions, a small system
        for method_id in methods:  # warm-up: numba kernels and imports stay out of the timings
            for solver in ("pymatting", args.solver)[args.no_reference:]:
                _timed_run(method_id, image[crop], trimaps["trimap1"][crop], solver=solver)
            if method_id != "random_walk":  # the strokes path's kernels (a crop this small would go 'direct')
                _timed_run(method_id, image[crop], trimaps["strokes"][crop], solver="multigrid")
        print(f"{len(samples)} images from {data}, methods {', '.join(methods)}")
        for method_id in methods:
            for trimap_set in args.trimaps:
                print_comparison_header(method_id, trimap_set)
                print_comparison_summary(compare_solvers(method_id, samples, trimap_set, args.solver,
                                                         reference=not args.no_reference,
                                                         on_row=print_comparison_row))
        return 0
    args.methods = args.methods or list(METHODS)
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
