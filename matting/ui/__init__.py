"""The Gradio app of the workbench (``python app.py``): layout generated from the method registry.

* :mod:`.layout` — the Blocks: tabs per family, Compare, Methods; :func:`build_demo`.
* :mod:`.handlers` — the event functions (plain functions of component values).
* :mod:`.controls` — parameter controls generated from the method specs.
* :mod:`.editor` — the trimap / scribble painter ↔ trimaps and scribbles.
* :mod:`.plate` — checks that a background plate fits the photo.
* :mod:`.checkpoints` — weights status and validated checkpoint uploads.
* :mod:`.examples` — the example rows (scikit-image sample photos).
"""
from .layout import build_demo, launch_options, workers

__all__ = ["build_demo", "launch_options", "workers"]
