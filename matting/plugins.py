"""Third-party methods, networks and checkpoints, found through entry points of installed packages.

A package adds a method to the workbench with three entry-point groups in its ``pyproject.toml``::

    [project.entry-points."matting.architectures"]
    mynet = "mypackage.mynet"                      # a module that registers its network(s)
    [project.entry-points."matting.methods"]
    mynet = "mypackage.mynet_method"               # a module that registers its MethodSpec(s)
    [project.entry-points."matting.manifests"]
    mynet = "mypackage:MANIFEST_PATH"              # the path of a manifest JSON with its checkpoints

``import matting`` loads them once; :func:`load_plugins` with ``refresh=True`` looks again (after
installing a package into a running process, and in tests). A plug-in that fails to load is logged and
skipped: it never takes the workbench down.
"""
from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

from .models.registry import ENTRY_POINT_GROUP as ARCHITECTURES_GROUP, discover
from .weights.manifest import MANIFESTS_ENTRY_POINT_GROUP as MANIFESTS_GROUP, plugin_manifests

METHODS_GROUP = "matting.methods"

log = logging.getLogger(__name__)

__all__ = ["ARCHITECTURES_GROUP", "MANIFESTS_GROUP", "METHODS_GROUP", "load_plugins"]


def load_plugins(refresh: bool = False) -> list[str]:
    """Import every method plug-in (and, with ``refresh``, look again for networks and manifests);
    returns the entry points of the methods loaded now."""
    loaded = []
    for point in entry_points(group=METHODS_GROUP):
        module_name = point.value.split(":", 1)[0]
        try:
            importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - a broken plug-in must not take the workbench down
            log.exception("the method plug-in %r failed to load", point.value)
            continue
        loaded.append(point.value)
    if refresh:
        discover(refresh=True)
        plugin_manifests(refresh=True)
    return loaded
