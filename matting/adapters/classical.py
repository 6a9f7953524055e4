"""The classical trimap / scribble solvers, through pymatting (Germer et al., MIT licence).

Every Laplacian and every sampling method here is pymatting's own implementation; this module declares
inputs, parameters and cards, and maps our canonical inputs onto pymatting's arrays (float64 image in
[0, 1], float64 trimap with 0 = background, 1 = foreground, anything between = unknown). For
closed-form, learning-based and random-walk matting the linear system is solved by
:mod:`matting.solvers` (hard constraints, direct or colour-affine multigrid preconditioner) unless the
``solver`` parameter asks for pymatting's own solver.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from ..errors import MattingError
from ..registry import register
from ..spec import Card, Inputs, IntermediateMap, MethodOutput, MethodSpec, OutputMap, Param

PYMATTING = "pymatting (github.com/pymatting/pymatting)"
PYMATTING_LICENSE = "MIT (pymatting)"
NO_WEIGHTS = "none: no learned weights"

SOLVER_PARAMS = (
    Param("max_iterations", 10000, "Conjugate-gradient iteration limit.", kind="int", minimum=10, maximum=100000),
    Param("tolerance", 1e-7, "Relative residual at which conjugate gradients stops.", minimum=1e-12,
          maximum=1e-2, log_scale=True),
)
SOLVER_CHOICE = Param(
    "solver", "auto",
    "How the sparse system is solved. auto: direct factorisation for a trimap's band, colour-affine "
    "multigrid when most pixels are unknown (strokes) and, for closed-form, on any band of more than 50k unknown "
    "pixels, incomplete Cholesky for bands too large to factorise; all solve over "
    "the unknown pixels only, with the known pixels as exact constraints. pymatting: pymatting's own "
    "solver (incomplete-Cholesky or Jacobi CG, soft λ = 100 constraints), kept as the reference.",
    kind="choice", choices=("auto", "direct", "multigrid", "ichol", "pymatting"),
)
CONSTRAINTS_MAP = OutputMap(
    "constraints", "trimap",
    "The constraints the solver saw: white = fixed foreground, black = fixed background, grey = solved for.",
)


def pymatting_trimap(inputs: Inputs) -> np.ndarray:
    """Our trimap or scribbles → pymatting's float64 trimap (0, 0.5, 1)."""
    levels = inputs.trimap if inputs.trimap is not None else inputs.scribbles.as_sparse_trimap()
    return levels.astype(np.float64) / 255.0


def _constraints_map(trimap01: np.ndarray) -> dict:
    return {"constraints": IntermediateMap(trimap01.astype(np.float32), "trimap", CONSTRAINTS_MAP.description)}


def _solve(method_name: str, solver, inputs: Inputs, params: dict, **kwargs) -> MethodOutput:
    trimap = pymatting_trimap(inputs)
    cg_kwargs = {"maxiter": params["max_iterations"], "rtol": params["tolerance"]}
    with _convergence_message(method_name, params):
        alpha = solver(inputs.image.astype(np.float64), trimap, cg_kwargs=cg_kwargs, **kwargs)
    return MethodOutput(alpha=keep_known_pixels(alpha, trimap), maps=_constraints_map(trimap))


def _solve_own(method_name: str, laplacian, inputs: Inputs, params: dict, precision: str = "single",
               multigrid: bool = True, band_multigrid: bool = False) -> MethodOutput:
    """Our solver set-up (matting.solvers) on ``laplacian(image, trimap)``: a pymatting Laplacian or a
    ready reduced system (closed-form)."""
    from .. import solvers

    _pm()  # pymatting's numba cache directory is set before its modules load
    trimap = pymatting_trimap(inputs)
    image = inputs.image.astype(np.float64)
    with _convergence_message(method_name, params):
        alpha = solvers.solve_laplacian(
            laplacian(image, trimap), trimap, image, solver=params["solver"],
            rtol=params["tolerance"], maxiter=params["max_iterations"], precision=precision,
            multigrid=multigrid, band_multigrid=band_multigrid)
    return MethodOutput(alpha=alpha, maps=_constraints_map(trimap))


@contextmanager
def _convergence_message(method_name: str, params: dict):
    """pymatting's and our CG raise ValueError('... did not converge ...'): say what to change instead."""
    try:
        yield
    except ValueError as exc:
        if "did not converge" in str(exc):
            raise MattingError(
                f"{method_name} did not converge within {params['max_iterations']} iterations; "
                "raise max_iterations or the tolerance, or narrow the unknown region of the trimap."
            ) from None
        raise


def keep_known_pixels(alpha: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Known pixels take their trimap value.

    pymatting's KNN, random-walk, learning-based and large-kernel solvers impose the trimap as a soft
    penalty (λ = 100), so known pixels can drift (by up to 0.37 on alphamatting GT14 with large kernel);
    the trimap's promise that those pixels are definite is kept here, as benchmarks and users assume.
    """
    known = (trimap == 0.0) | (trimap == 1.0)
    return np.where(known, trimap, alpha)


def _pm():
    from .. import _pymatting

    return _pymatting


def closed_form(inputs: Inputs, params: dict) -> MethodOutput:
    laplacian = {"epsilon": params["epsilon"], "radius": params["radius"]}
    if params["solver"] != "pymatting":
        from ..solvers import closed_form_system

        return _solve_own("Closed-form matting", lambda image, trimap: closed_form_system(image, trimap, **laplacian),
                          inputs, params, band_multigrid=True)
    return _solve("Closed-form matting", _pm().estimate_alpha_cf, inputs, params, laplacian_kwargs=laplacian)


def knn(inputs: Inputs, params: dict) -> MethodOutput:
    laplacian = {"n_neighbors": [params["neighbors"], params["far_neighbors"]], "distance_weights": [2.0, 0.1]}
    return _solve("KNN matting", _pm().estimate_alpha_knn, inputs, params, laplacian_kwargs=laplacian)


def large_kernel(inputs: Inputs, params: dict) -> MethodOutput:
    smallest = 4 * params["radius"] + 1  # pymatting's box filters need h − 2r ≥ 2r + 1
    if min(inputs.shape) < smallest:
        raise MattingError(
            f"Large-kernel matting with radius {params['radius']} needs an image at least {smallest} pixels "
            f"on each side; this one is {inputs.shape[1]}×{inputs.shape[0]}. Lower the radius."
        )
    laplacian = {"epsilon": params["epsilon"], "radius": params["radius"]}
    return _solve("Large-kernel matting", _pm().estimate_alpha_lkm, inputs, params, laplacian_kwargs=laplacian)


def random_walk(inputs: Inputs, params: dict) -> MethodOutput:
    laplacian = {"sigma": params["sigma"], "radius": params["radius"]}
    if params["solver"] != "pymatting":
        from pymatting.laplacian.rw_laplacian import rw_laplacian

        # Its weights vanish across edges (regularised by 1e-8): too ill-conditioned for a float32 factor,
        # and without the colour-affine near-null space the multigrid is built on (auto never picks it).
        return _solve_own("Random-walk matting", lambda image, _trimap: rw_laplacian(image, **laplacian),
                          inputs, params, precision="double", multigrid=False)
    return _solve("Random-walk matting", _pm().estimate_alpha_rw, inputs, params, laplacian_kwargs=laplacian)


def learning_based(inputs: Inputs, params: dict) -> MethodOutput:
    laplacian = {"epsilon": params["epsilon"], "radius": params["radius"]}
    if params["solver"] != "pymatting":
        from pymatting.laplacian.lbdm_laplacian import lbdm_laplacian

        return _solve_own("Learning-based matting", lambda image, _trimap: lbdm_laplacian(image, **laplacian),
                          inputs, params)
    return _solve("Learning-based matting", _pm().estimate_alpha_lbdm, inputs, params, laplacian_kwargs=laplacian)


def shared_sampling(inputs: Inputs, params: dict) -> MethodOutput:
    trimap = pymatting_trimap(inputs)
    alpha, foreground, _background = _pm().estimate_alpha_sm(
        inputs.image.astype(np.float64),
        trimap,
        return_foreground_background=True,
        trimap_expansion_radius=params["expansion_radius"],
        trimap_expansion_threshold=params["expansion_threshold"],
        sample_gathering_angles=params["search_directions"],
    )
    return MethodOutput(alpha=alpha, foreground=np.clip(foreground, 0, 1), maps=_constraints_map(trimap))


def _epsilon(default=1e-7):
    return Param("epsilon", default, "Regulariser of the local colour-line model; larger = smoother alpha.",
                 minimum=1e-10, maximum=1e-1, log_scale=True)


def _window_radius(default=1, maximum=5, what="local window"):
    return Param("radius", default, f"Radius in pixels of the {what}.", kind="int", minimum=1, maximum=maximum)


ONLY_TRIMAP = ("trimap",)
TRIMAP_OR_SCRIBBLES = ("trimap", "scribbles")

_SPECS = [
    MethodSpec(
        id="closed_form", name="Closed-form matting", family="trimap", compute=closed_form,
        one_of_inputs=TRIMAP_OR_SCRIBBLES,
        params=(_epsilon(), _window_radius(), SOLVER_CHOICE) + SOLVER_PARAMS,
        outputs=(CONSTRAINTS_MAP,),
        card=Card(
            paper="A Closed-Form Solution to Natural Image Matting",
            authors="Anat Levin, Dani Lischinski, Yair Weiss", year=2008, venue="IEEE TPAMI 30(2)",
            paper_url="https://doi.org/10.1109/TPAMI.2007.1177", code=PYMATTING,
            code_license=PYMATTING_LICENSE, weights_license=NO_WEIGHTS,
            how_it_works=(
                "Inside every small window, foreground and background colours are assumed to lie on a line "
                "in colour space, which makes alpha an affine function of the colour there. F and B can then "
                "be eliminated, leaving a quadratic cost on alpha alone (the 'matting Laplacian'). The "
                "trimap's known pixels fix some values and one sparse linear system gives all the others. "
                "The paper itself uses a few scribbles as constraints; a trimap works the same way."),
        ),
    ),
    MethodSpec(
        id="knn", name="KNN matting", family="trimap", compute=knn,
        one_of_inputs=TRIMAP_OR_SCRIBBLES,
        params=(
            Param("neighbors", 20, "Neighbours per pixel found in colour + position space (position weight 2.0).",
                  kind="int", minimum=1, maximum=100),
            Param("far_neighbors", 10, "Extra neighbours found mostly by colour (position weight 0.1): "
                  "the non-local links that let alpha jump across holes.", kind="int", minimum=0, maximum=100),
        ) + SOLVER_PARAMS,
        outputs=(CONSTRAINTS_MAP,),
        card=Card(
            paper="KNN Matting", authors="Qifeng Chen, Dingzeyu Li, Chi-Keung Tang", year=2013,
            venue="IEEE TPAMI 35(9) (CVPR 2012)", paper_url="https://doi.org/10.1109/TPAMI.2013.18",
            code=PYMATTING, code_license=PYMATTING_LICENSE, weights_license=NO_WEIGHTS,
            how_it_works=(
                "Pixels that look alike should have similar alpha even if they are far apart (non-local "
                "principle). Each pixel is linked to its K nearest neighbours in a feature space of colour "
                "and position; alpha is the smoothest labelling over that graph that agrees with the known "
                "pixels. Good for hair and holes that show the background."),
            notes="pymatting uses the binary kernel (all links weight 1), which its authors found as good as "
                  "the paper's soft kernel.",
        ),
    ),
    MethodSpec(
        id="large_kernel", name="Large-kernel matting", family="trimap", compute=large_kernel,
        one_of_inputs=ONLY_TRIMAP,
        scribbles_note="It relies on a dense trimap: large windows mix known and unknown pixels and the "
                       "solver converges only with a narrow unknown band. Turn scribbles into a trimap first "
                       "(matting.trimap.dense_from_scribbles, or 'Strokes → trimap' in the app).",
        params=(_epsilon(), _window_radius(10, 50, "large window")) + SOLVER_PARAMS,
        outputs=(CONSTRAINTS_MAP,),
        card=Card(
            paper="Fast Matting Using Large Kernel Matting Laplacian Matrices",
            authors="Kaiming He, Jian Sun, Xiaoou Tang", year=2010, venue="CVPR 2010",
            paper_url="https://doi.org/10.1109/CVPR.2010.5539896", code=PYMATTING,
            code_license=PYMATTING_LICENSE, weights_license=NO_WEIGHTS,
            how_it_works=(
                "The closed-form matting Laplacian with much larger windows. Larger windows propagate "
                "information further and let conjugate gradients converge in fewer iterations; the "
                "Laplacian is never built, its product with a vector is computed with box filters in time "
                "independent of the window size."),
        ),
    ),
    MethodSpec(
        id="random_walk", name="Random-walk matting", family="trimap", compute=random_walk,
        one_of_inputs=TRIMAP_OR_SCRIBBLES,
        params=(
            Param("sigma", 0.033, "Colour difference at which neighbour links fade (Gaussian width).",
                  minimum=1e-3, maximum=1.0, log_scale=True),
            _window_radius(1, 5, "neighbourhood"),
            SOLVER_CHOICE,
        ) + SOLVER_PARAMS,
        outputs=(CONSTRAINTS_MAP,),
        card=Card(
            paper="Random Walks for Interactive Alpha-Matting",
            authors="Leo Grady, Thomas Schiwietz, Shmuel Aharon, Rüdiger Westermann", year=2005,
            venue="VIIP 2005", paper_url="https://www.cs.tufts.edu/~grady/", code=PYMATTING,
            code_license=PYMATTING_LICENSE, weights_license=NO_WEIGHTS,
            how_it_works=(
                "A random walker starts at each unknown pixel and steps to neighbours, preferring similar "
                "colours. Alpha is the probability that it reaches a foreground pixel before a background "
                "pixel, which is the solution of a Laplace equation on the pixel graph."),
        ),
    ),
    MethodSpec(
        id="learning_based", name="Learning-based matting", family="trimap", compute=learning_based,
        one_of_inputs=TRIMAP_OR_SCRIBBLES,
        params=(_epsilon(), _window_radius(), SOLVER_CHOICE) + SOLVER_PARAMS,
        outputs=(CONSTRAINTS_MAP,),
        card=Card(
            paper="Learning Based Digital Matting", authors="Yuanjie Zheng, Chandra Kambhamettu", year=2009,
            venue="ICCV 2009", paper_url="https://doi.org/10.1109/ICCV.2009.5459326", code=PYMATTING,
            code_license=PYMATTING_LICENSE, weights_license=NO_WEIGHTS,
            how_it_works=(
                "Within each window, alpha is learned as a (ridge-regressed) function of colour from the "
                "window's own pixels — 'learning' here means a tiny local regression, not a neural network. "
                "Gathering these local predictors gives a Laplacian like closed-form's, solved the same way."),
        ),
    ),
    MethodSpec(
        id="shared_sampling", name="Shared sampling", family="trimap", compute=shared_sampling,
        one_of_inputs=ONLY_TRIMAP, provides_foreground=True,
        scribbles_note="It samples foreground and background colours from the known regions next to each "
                       "unknown pixel, so it needs a dense trimap. Turn scribbles into a trimap first "
                       "(matting.trimap.dense_from_scribbles, or 'Strokes → trimap' in the app).",
        params=(
            Param("expansion_radius", 10, "Grow the known regions by up to this many pixels into similar colours.",
                  kind="int", minimum=0, maximum=50),
            Param("expansion_threshold", 0.02, "Colour distance below which an unknown pixel joins a known region.",
                  minimum=0.0, maximum=0.5),
            Param("search_directions", 4, "Number of rays along which each pixel gathers candidate samples.",
                  kind="int", minimum=1, maximum=16),
        ),
        outputs=(CONSTRAINTS_MAP,),
        card=Card(
            paper="Shared Sampling for Real-Time Alpha Matting",
            authors="Eduardo S. L. Gastal, Manuel M. Oliveira", year=2010,
            venue="Eurographics 2010 (Computer Graphics Forum 29(2))",
            paper_url="https://doi.org/10.1111/j.1467-8659.2009.01627.x", code=PYMATTING,
            code_license=PYMATTING_LICENSE, weights_license=NO_WEIGHTS,
            how_it_works=(
                "A sampling method: each unknown pixel casts a few rays into the known regions to collect "
                "candidate foreground/background colour pairs, neighbours share their best pairs, and alpha "
                "is the projection of the pixel's colour onto the line between its chosen F and B. Every "
                "pixel is independent, which made it real-time on a 2010 GPU. It also estimates F."),
        ),
    ),
]

for _spec in _SPECS:
    register(_spec)
