"""Parameter controls generated from the method specs.

Each family tab owns a fixed pool of controls: one per distinct (parameter name, kind) among the
family's methods. Selecting a method shows that method's controls, relabelled and with its own help,
range and choices, and hides the rest. Controls are passed to the run handler as keyword inputs named
after the parameters, so the API reads ``epsilon=…, radius=…``. An empty number (None) or the
"Default (…)" entry of a dropdown means "the method's default", which is also what an API call that
leaves a parameter out gets.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..spec import MethodSpec, Param


@dataclass(frozen=True)
class Slot:
    key: str  # keyword name in the run handler and the API
    name: str  # the parameter's name
    kind: str


def _widget_kind(param: Param) -> str:
    return param.kind if param.kind in ("int", "bool", "choice") else "float"


def plan_slots(specs: list[MethodSpec], reserved: set[str]) -> list[Slot]:
    """One slot per distinct (name, kind); the key is the name unless it clashes."""
    seen: dict[tuple[str, str], None] = {}
    for spec in specs:
        for param in spec.params:
            seen.setdefault((param.name, _widget_kind(param)), None)
    kinds_per_name: dict[str, int] = {}
    for name, _kind in seen:
        kinds_per_name[name] = kinds_per_name.get(name, 0) + 1
    slots = []
    for name, kind in seen:
        key = name if kinds_per_name[name] == 1 else f"{name}_{kind}"
        if key in reserved or not key.isidentifier():
            key = f"param_{key}" if f"param_{key}".isidentifier() else f"param_{len(slots)}"
        slots.append(Slot(key, name, kind))
    return slots


def _format_number(value) -> str:
    if isinstance(value, float) and value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_range(param: Param) -> str:
    if param.minimum is None and param.maximum is None:
        return ""
    low = "" if param.minimum is None else _format_number(param.minimum)
    high = "" if param.maximum is None else _format_number(param.maximum)
    scale = ", log scale" if param.log_scale else ""
    return f" Range {low} – {high}{scale}."


DEFAULT_CHOICE = ""  # the dropdown entry that means "the method's default"


def _choices(param: Param) -> list[tuple[str, str]]:
    """Dropdown entries for a choice or bool parameter; the first one means 'the default'."""
    if param.kind == "bool":
        options = [("On", "true"), ("Off", "false")]
        default = "on" if param.default else "off"
    else:
        options = [(str(choice), str(choice)) for choice in param.choices]
        default = str(param.default)
    return [(f"Default ({default})", DEFAULT_CHOICE)] + options


def _info(param: Param) -> str:
    return param.help + describe_range(param)


def build_control(slot: Slot, param: Param, visible: bool):
    """The component for a slot, configured for ``param`` (of the selected method, or the first that has it)."""
    common = dict(label=param.title, info=_info(param), visible=visible, elem_classes=["param-control"])
    if slot.kind in ("bool", "choice"):
        # Custom values pass through so that the core, not Gradio, says what is wrong with them.
        return gr.Dropdown(choices=_choices(param), value=DEFAULT_CHOICE, allow_custom_value=True, **common)
    return gr.Number(value=None, placeholder=f"{_format_number(param.default)} (default)",
                     precision=0 if slot.kind == "int" else None, **common)


def control_update(slot: Slot, param: Param | None):
    """gr.update for one slot when a method is selected (``param`` None: the method lacks it)."""
    if param is None:
        return gr.update(visible=False)
    if slot.kind in ("bool", "choice"):
        return gr.update(visible=True, label=param.title, info=_info(param), choices=_choices(param),
                         value=DEFAULT_CHOICE)
    return gr.update(visible=True, label=param.title, info=_info(param), value=None,
                     placeholder=f"{_format_number(param.default)} (default)")


def slot_param(slot: Slot, spec: MethodSpec) -> Param | None:
    for param in spec.params:
        if param.name == slot.name and _widget_kind(param) == slot.kind:
            return param
    return None


def collect_params(spec: MethodSpec, slots: list[Slot], values: dict) -> dict:
    """Keyword values from the controls → the method's parameters (None and foreign slots dropped)."""
    params = {}
    for slot in slots:
        param = slot_param(slot, spec)
        value = values.get(slot.key)
        if param is None or value is None or value == DEFAULT_CHOICE:
            continue
        params[param.name] = value
    return params
