"""Compile pymatting's numba kernels into the project cache once (run by setup): ``python -m matting.warmup``."""
import time

from .foreground import estimate_foreground_ml
from .registry import methods
from .runner import estimate_foreground, run
from .synthetic import make_composite


def warm() -> dict[str, float]:
    scene = make_composite(64, 64, edge=3.0)
    trimap = scene.trimap(2)
    seconds = {}
    for spec in methods("trimap"):
        if spec.weights:
            continue
        start = time.perf_counter()
        run(spec.id, scene.image, trimap=trimap, foreground="none")
        seconds[spec.id] = time.perf_counter() - start
    # The strokes path (colour-affine multigrid) has kernels of its own; 'auto' takes it only on large images.
    start = time.perf_counter()
    run("closed_form", scene.image, trimap=trimap, foreground="none", solver="multigrid")
    seconds["closed_form multigrid"] = time.perf_counter() - start
    for how in ("multilevel", "closed_form"):
        start = time.perf_counter()
        estimate_foreground(scene.image, scene.alpha, how)
        seconds[f"foreground {how}"] = time.perf_counter() - start
    # The two-thread multi-level sweeps call their rectangle kernel from Python (levels of 64k pixels up).
    start = time.perf_counter()
    large = make_composite(256, 256, edge=3.0)
    estimate_foreground_ml(large.image, large.alpha, threads=2)
    seconds["foreground two threads"] = time.perf_counter() - start
    return seconds


if __name__ == "__main__":
    total = time.perf_counter()
    for name, value in warm().items():
        print(f"  {name:<24} {value:6.2f} s")
    print(f"numba cache warm ({time.perf_counter() - total:.1f} s)")
