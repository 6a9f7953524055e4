"""Network architectures, one file each (pure ``nn.Module``s, no I/O).

``create(arch, **kwargs)`` builds a network by the official class's constructor arguments:

=================  ==========================================================================
arch               official class and constructor arguments
=================  ==========================================================================
``u2net``          ``U2NET(in_ch=3, out_ch=1)``
``u2netp``         ``U2NETP(in_ch=3, out_ch=1)``
``modnet``         ``MODNet(in_channels=3, hr_channels=32, backbone_arch='mobilenetv2')``
``bgmv2_base``     ``MattingBase(backbone)``
``bgmv2_refine``   ``MattingRefine(backbone, backbone_scale, refine_mode, refine_sample_pixels,
                   refine_threshold, ...)``
``dim``            ``VGG16(stage)`` of the huochaitiantang Deep Image Matting port
=================  ==========================================================================
"""
from importlib import import_module

_ARCHITECTURES = {
    "u2net": ("u2net", "U2NET"),
    "u2netp": ("u2net", "U2NETP"),
    "modnet": ("modnet", "MODNet"),
    "bgmv2_base": ("bgmv2", "MattingBase"),
    "bgmv2_refine": ("bgmv2", "MattingRefine"),
    "dim": ("dim", "DIM"),
}


def architectures():
    return sorted(_ARCHITECTURES)


def create(arch, **kwargs):
    """Build the network ``arch`` (see the module docstring) with the official arguments."""
    try:
        module_name, class_name = _ARCHITECTURES[arch]
    except KeyError:
        from ..errors import MattingError
        raise MattingError(f"Unknown architecture {arch!r}; known: {', '.join(architectures())}.") from None
    cls = getattr(import_module(f"{__name__}.{module_name}"), class_name)
    return cls(**kwargs)
