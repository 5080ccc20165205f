"""The registry of medbundle networks: what each network class declares about itself.

Each network class is registered with :func:`register_network` (a class decorator, or a plain call for a class
from another library such as MONAI's ``ResNet``) and a :class:`NetworkSpec`: its Grad-CAM layer, the parameter
prefixes of its head and of its backbone (for transfer learning, :func:`medbundle.networks.named_param_groups` and
the ``trainable`` prefixes of :class:`medbundle.handlers.PhaseSchedule`) and the input it expects.
:func:`network_spec`, :func:`gradcam_layer` and :func:`head_prefixes` read it back for a class, an instance, or an
instance inside a ``DistributedDataParallel`` / ``DataParallel`` / ``torch.compile`` wrapper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from torch import nn

__all__ = ["NetworkSpec", "register_network", "network_spec", "gradcam_layer", "head_prefixes", "backbone_blocks"]

# a fixed layer name, or a rule ``(model or class, (height, width)) -> layer name`` for size-dependent choices
GradCAMLayer = str | Callable[[nn.Module | type, tuple[int, int]], str] | None

_REGISTRY: dict[type, NetworkSpec] = {}
_WRAPPER_ATTRS = ("module", "_orig_mod")  # DistributedDataParallel / DataParallel, torch.compile


@dataclass(frozen=True)
class NetworkSpec:
    """What a registered network class declares about itself.

    Args:
        gradcam_layer: dotted module name of the Grad-CAM layer, or a rule ``(model, (height, width)) -> name``
            when the choice depends on the input size; None: no choice (the explainers find one automatically).
        head: parameter-name prefixes of the head (the part a transfer-learning head phase trains).
        backbone: parameter-name prefixes of everything else (the part pretrained weights fill).
        in_channels: input channels of the default configuration.
        spatial_size: a typical input (height, width).
        min_size: the smallest input side the network runs at.
        blocks: the backbone's blocks from the input to the head, each a tuple of parameter-name prefixes (for the
            transfer strategies that unfreeze the last N blocks: :func:`medbundle.training.transfer_phases`); empty:
            each ``backbone`` prefix is one block.
    """

    gradcam_layer: GradCAMLayer = None
    head: tuple[str, ...] = ()
    backbone: tuple[str, ...] = ()
    in_channels: int | None = None
    spatial_size: tuple[int, int] | None = None
    min_size: int | None = None
    blocks: tuple[tuple[str, ...], ...] = ()


def register_network(
    cls: type | None = None,
    *,
    gradcam_layer: GradCAMLayer = None,
    head: Sequence[str] = (),
    backbone: Sequence[str] = (),
    in_channels: int | None = None,
    spatial_size: Sequence[int] | None = None,
    min_size: int | None = None,
    blocks: Sequence[Sequence[str] | str] = (),
):
    """Register a network class with its :class:`NetworkSpec`; a class decorator, or a call for a foreign class.

    Subclasses of a registered class share its spec unless registered themselves. Registering a class again
    replaces its spec.

    Args:
        cls: the class, for the call form (``register_network(ResNet, gradcam_layer="layer4", head=("fc",))``);
            omitted in the decorator form (``@register_network(gradcam_layer=..., head=("classifier",))``).
        gradcam_layer, head, backbone, in_channels, spatial_size, min_size, blocks: the :class:`NetworkSpec` fields.

    Returns:
        ``cls`` (call form) or a decorator that registers and returns its class.
    """
    spec = NetworkSpec(
        gradcam_layer=gradcam_layer,
        head=tuple(head),
        backbone=tuple(backbone),
        in_channels=in_channels,
        spatial_size=None if spatial_size is None else (int(spatial_size[0]), int(spatial_size[-1])),
        min_size=min_size,
        blocks=tuple((b,) if isinstance(b, str) else tuple(b) for b in blocks),
    )

    def register(klass: type) -> type:
        if not (isinstance(klass, type) and issubclass(klass, nn.Module)):
            raise TypeError(f"register_network needs a torch.nn.Module subclass, got {klass!r}")
        _REGISTRY[klass] = spec
        return klass

    return register if cls is None else register(cls)


def _unwrap(model: nn.Module) -> tuple[nn.Module, str]:
    """The network inside wrappers (``.module`` of DDP/DataParallel, ``._orig_mod`` of ``torch.compile``), and the
    dotted path to it (``""`` when not wrapped). A registered class is never unwrapped."""
    path = []
    while _lookup(type(model)) is None:
        inner = next((getattr(model, a) for a in _WRAPPER_ATTRS if isinstance(getattr(model, a, None), nn.Module)),
                     None)
        if inner is None:
            break
        path.append(next(a for a in _WRAPPER_ATTRS if getattr(model, a, None) is inner))
        model = inner
    return model, ".".join(path)


def _lookup(cls: type) -> NetworkSpec | None:
    return next((_REGISTRY[k] for k in cls.__mro__ if k in _REGISTRY), None)


def _find(model_or_class: nn.Module | type) -> tuple[NetworkSpec | None, type, str]:
    """(spec or None, the network's class, wrapper path) of a class or a (wrapped) instance."""
    if isinstance(model_or_class, type):
        return _lookup(model_or_class), model_or_class, ""
    model, path = _unwrap(model_or_class)
    return _lookup(type(model)), type(model), path


def network_spec(model_or_class: nn.Module | type) -> NetworkSpec:
    """The :class:`NetworkSpec` of a network class, of an instance, or of an instance inside a wrapper.

    Args:
        model_or_class: a registered network class or an instance of one (``CTNet``, the MONAI ``ResNet`` that
            :func:`medbundle.networks.resnet50` returns, a ``DistributedDataParallel`` around either ...).

    Raises:
        LookupError: the class is not registered; the message names it and says how to register it.
    """
    spec, cls, _ = _find(model_or_class)
    if spec is None:
        known = ", ".join(sorted(k.__name__ for k in _REGISTRY))
        raise LookupError(
            f"{cls.__module__}.{cls.__qualname__} is not a registered medbundle network (registered: {known}). "
            f"Register it with the class decorator @medbundle.networks.register_network(gradcam_layer=..., "
            f"head=(...), backbone=(...)), or call medbundle.networks.register_network({cls.__name__}, ...) for a "
            f"class defined elsewhere."
        )
    return spec


def gradcam_layer(model: nn.Module | type, spatial_size: int | Sequence[int] | None = None) -> str | None:
    """The Grad-CAM layer a network declares, for inputs of ``spatial_size``.

    The name is relative to the network itself, not to a wrapper around it (the explainers unwrap
    ``DistributedDataParallel`` before they look the layer up).

    Args:
        model: a network instance (wrapped or not) or class.
        spatial_size: input (height, width) or one side for square inputs; None: the spec's typical size.
            Only size-dependent choices (the 5-block CNN's) use it.

    Returns:
        the dotted module name, or None for an unregistered network or one without a declared layer (the
        explainers then choose automatically: :func:`medbundle.explain.find_target_layer`).
    """
    spec, _, _ = _find(model)
    if spec is None or spec.gradcam_layer is None:
        return None
    if isinstance(spec.gradcam_layer, str):
        return spec.gradcam_layer
    size = spec.spatial_size if spatial_size is None else spatial_size
    if size is None:
        raise ValueError("this network's Grad-CAM layer depends on the input size: pass spatial_size")
    size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[-1]))
    return spec.gradcam_layer(model if isinstance(model, type) else _unwrap(model)[0], size)


def head_prefixes(model: nn.Module | type) -> list[str]:
    """The head's parameter-name prefixes, as the names appear in ``model.named_parameters()``.

    For a wrapped instance the wrapper's path is prepended (``"module.classifier"`` inside
    ``DistributedDataParallel``), so the result fits :func:`medbundle.networks.named_param_groups` and the
    ``trainable`` prefixes of :class:`medbundle.handlers.PhaseSchedule` called on that same object;
    ``network_spec(model).head`` holds the unprefixed ones.

    Raises:
        LookupError: the network is not registered (see :func:`network_spec`).
    """
    spec = network_spec(model)
    _, _, path = _find(model)
    return [f"{path}.{p}" if path else p for p in spec.head]


def backbone_blocks(model: nn.Module | type) -> list[list[str]]:
    """The backbone's blocks from the input to the head, each a list of parameter-name prefixes as they appear in
    ``model.named_parameters()`` (the wrapper's path prepended, as in :func:`head_prefixes`).

    Raises:
        LookupError: the network is not registered (see :func:`network_spec`).
    """
    spec = network_spec(model)
    _, _, path = _find(model)
    blocks = spec.blocks or tuple((p,) for p in spec.backbone)
    return [[f"{path}.{p}" if path else p for p in block] for block in blocks]
