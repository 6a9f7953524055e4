"""The Gradio Blocks of the workbench, generated from the method registry.

One tab per family of :data:`matting.spec.FAMILIES`, each with a method dropdown, a pool of parameter
controls (see :mod:`.controls`) and a result panel; then Compare and Methods. Input panels (the
trimap painter, the background plate) sit in the first tab whose methods take that input. Nothing
here names a method: registering one adds it to its tab, to Compare and to the Methods cards.
"""
from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass

import gradio as gr

from ..composite import BACKDROPS
from ..registry import methods
from ..spec import FAMILIES
from . import cards as card_text, compare, downloads, first_look, handlers, prompts_tab, video_tab
from .edge import WorkbenchBlocks
from .controls import Slot, build_control, plan_slots, slot_param
from .examples import LICENSE_NOTE, ensure_examples

log = logging.getLogger("matting.ui")

HEAVY = "matting"  # concurrency group of every event that runs a method
# Names a parameter control may not take: the run handler's own arguments.
RUN_INPUT_NAMES = set(inspect.signature(handlers.run_method([])).parameters)
TITLE = "Matting workbench"

CSS = """
.gradio-container { max-width: 1500px !important; }
.small-note p { font-size: 0.8em; opacity: 0.75; }
#header h1 { margin-bottom: 0.2em; }
.status-line { min-height: 1.5em; }
.param-control .info, .param-control span[data-testid="block-info"] { font-size: 0.8em; }
.compact-gallery .fixed-height { min-height: 0 !important; }
#methods-overview td, #methods-overview th { word-break: normal; overflow-wrap: break-word; font-size: 0.9em; }
"""


def workers() -> int:
    """How many method runs may go at once (each can use all cores: keep it small)."""
    return max(1, int(os.environ.get("MATTING_APP_WORKERS", "2")))


def launch_options() -> dict:
    """Arguments of ``demo.launch`` that Gradio 6 takes there rather than in Blocks()."""
    return {"theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="slate"), "css": CSS}


@dataclass
class Shared:
    """Inputs every tab reads."""
    photo_file: gr.File
    ground_truth_file: gr.File
    plate_file: gr.File
    trimap_file: gr.File
    photo_preview: gr.Image = None
    photo_note: gr.Markdown = None
    ground_truth_note: gr.Markdown = None
    input_mode: gr.Radio = None
    painter: gr.ImageEditor = None
    painter_note: gr.Markdown = None
    plate_preview: gr.Image = None
    plate_note: gr.Markdown = None


def _home_family(input_names: tuple[str, ...]) -> str | None:
    """The first family tab whose methods take any of these inputs."""
    for family in FAMILIES:
        if any(spec.accepts(name) for spec in methods(family) for name in input_names):
            return family
    return None


def _automatic_choices() -> list[tuple[str, str]]:
    """Methods that need nothing but the photo: their mask can seed a trimap."""
    return [(spec.name, spec.id) for spec in methods()
            if not spec.required_inputs and not spec.one_of_inputs and not spec.unavailable]


# --------------------------------------------------------------------------- input panels

def _painter_panel(shared: Shared):
    with gr.Group():
        shared.input_mode = gr.Radio(list(handlers.INPUT_MODES), value=handlers.MODE_TRIMAP, show_label=False,
                                     elem_id="input-mode", container=False)
        legend = gr.Markdown(handlers.LEGENDS[handlers.MODE_TRIMAP], elem_id="painter-legend")
        shared.painter = gr.ImageEditor(
            label="Paint over the photo", type="numpy", image_mode="RGBA", format="png",
            brush=handlers.brush_for(handlers.MODE_TRIMAP), eraser=gr.Eraser(default_size="auto"),
            layers=gr.LayerOptions(allow_additional_layers=False, layers=["trimap"]),
            transforms=(), sources=(), canvas_size=(64, 64), height=560, elem_id="painter",
            buttons=["fullscreen"])
    shared.painter_note = gr.Markdown(elem_classes=["status-line"], elem_id="painter-note")
    with gr.Row(equal_height=False):
        automatic = _automatic_choices()
        with gr.Column(variant="panel"):
            gr.Markdown("**Start from an automatic trimap**")
            auto_method = gr.Dropdown(automatic, value=automatic[0][1] if automatic else None,
                                      label="Mask from", elem_id="auto-trimap-method",
                                      info=None if automatic else "No automatic method is registered.")
            band = gr.Slider(1, 60, value=handlers.DEFAULT_BAND, step=1, label="Unknown band (pixels each side)")
            auto_button = gr.Button("Make trimap", interactive=bool(automatic))
        with gr.Column(variant="panel"):
            gr.Markdown("**Load or convert**")
            shared.trimap_file.render()
            strokes_button = gr.Button("Strokes → trimap")
            gr.Markdown("Turns scribbles into a dense trimap (closed-form propagation) for methods that need one.",
                        elem_classes=["hint"])
    shared.input_mode.change(handlers.on_mode, [shared.input_mode], [shared.painter, legend],
                             api_name="set_input_mode", concurrency_limit=None, show_progress="hidden")
    trimap_outputs = [shared.painter, shared.input_mode, shared.painter_note]
    shared.trimap_file.upload(handlers.on_trimap_file, [shared.photo_file, shared.trimap_file], trimap_outputs,
                              api_name="load_trimap", concurrency_limit=None, show_progress="hidden")
    auto_button.click(handlers.on_auto_trimap, [shared.photo_file, auto_method, band], trimap_outputs,
                      api_name="auto_trimap", concurrency_id=HEAVY, concurrency_limit=workers())
    strokes_button.click(handlers.on_strokes_to_trimap, [shared.photo_file, shared.painter], trimap_outputs,
                         api_name="strokes_to_trimap", concurrency_id=HEAVY, concurrency_limit=workers())


def _plate_panel(shared: Shared):
    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            shared.plate_file.render()
            shared.plate_note = gr.Markdown(elem_id="plate-note")
        with gr.Column(scale=3):
            shared.plate_preview = gr.Image(label="|photo − plate|: bright = differs",
                                            interactive=False, format="png", height=360, elem_id="plate-preview")
    for trigger, name in ((shared.plate_file.upload, "check_plate"), (shared.plate_file.clear, "clear_plate")):
        trigger(handlers.on_plate, [shared.photo_file, shared.plate_file], [shared.plate_preview, shared.plate_note],
                api_name=name, concurrency_limit=None, show_progress="hidden")


# --------------------------------------------------------------------------- family tabs

@dataclass
class ResultPanel:
    components: dict

    def outputs(self) -> list:
        return [self.components[name] for name in handlers.RunOutputs._fields]


def _result_panel(family: str) -> ResultPanel:
    c = {}
    c["status"] = gr.Markdown(elem_id=f"status-{family}", elem_classes=["status-line"])
    with gr.Row(equal_height=True):
        c["alpha"] = gr.Image(label="Alpha", format="png", interactive=False, height=340, elem_id=f"alpha-{family}",
                              buttons=["download", "fullscreen"])
        c["foreground"] = gr.Image(label="Foreground", format="png", interactive=False, height=340,
                                   buttons=["download", "fullscreen"])
        c["composite"] = gr.Image(label="Composite", format="png", interactive=False, height=340,
                                  buttons=["download", "fullscreen"])
    c["metrics"] = gr.Dataframe(label="Metrics against the ground truth", visible=False, interactive=False,
                                wrap=True)
    with gr.Row(equal_height=False):
        # A direct child of the row: while hidden (no ground truth) the maps take the full width.
        c["error_plot"] = gr.Plot(label="Error map", visible=False, format="png", scale=2, min_width=300)
        with gr.Column(scale=3):
            c["cutout"] = gr.File(label="Cut-out (RGBA PNG, full resolution)", interactive=False, height=80)
            c["maps"] = gr.Gallery(label="Intermediate maps", format="png", columns=4, height="auto",
                                   object_fit="contain", preview=False, fit_columns=False,
                                   buttons=["download", "fullscreen"], elem_classes=["compact-gallery"])
    with gr.Accordion("Run details (JSON)", open=False):
        c["details"] = gr.JSON(show_label=False)
    c["state"] = gr.State(None)
    return ResultPanel(c)


def _weights_panel(family: str, default_spec):
    needs = bool(default_spec and default_spec.weights)
    ready = not needs or handlers.checkpoints.is_ready(default_spec)
    with gr.Accordion("Weights", open=not ready, visible=needs, elem_id=f"weights-{family}") as accordion:
        status = gr.Markdown(handlers.checkpoints.status_markdown(default_spec) if needs else "")
        checkpoint = gr.Dropdown(handlers.weights_choices(default_spec) if needs else [],
                                 value=default_spec.weights[0] if needs else None, label="Checkpoint")
        download, download_note = downloads.download_row(default_spec.weights[0] if needs else None)
        upload = gr.File(label="Or upload the checkpoint file (checked before use)")
        use = gr.Button("Use this file")
    checkpoint.change(downloads.on_checkpoint_choice, [checkpoint], [download, download_note],
                      api_name=f"choose_checkpoint_{family}", concurrency_limit=None, show_progress="hidden")
    return accordion, status, checkpoint, upload, use, download, download_note


def _family_tab(family: str, shared: Shared, painter_home, plate_home):
    specs = [spec for spec in methods(family) if not spec.unavailable]  # card-only entries: Methods, Compare
    default = specs[0] if specs else None
    slots: list[Slot] = plan_slots(specs, RUN_INPUT_NAMES)
    with gr.Tab(FAMILIES[family], id=family, elem_id=f"tab-{family}"):
        if not specs:
            gr.Markdown(f"No method of the family “{FAMILIES[family]}” is registered yet.")
            return None
        has_inputs = family in (painter_home, plate_home)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                method = gr.Dropdown(handlers.method_choices(family), value=default.id, label="Method",
                                     elem_id=f"method-{family}")
                info = gr.Markdown(card_text.method_summary(default), elem_classes=["method-info"])
                accordion, weights_status, checkpoint, upload, use, download, download_note = _weights_panel(
                    family, default)
                with gr.Accordion("Parameters", open=False):
                    controls = {}
                    for slot in slots:
                        param = slot_param(slot, default) or next(
                            p for s in specs for p in s.params if slot_param(slot, s) is p)
                        controls[slot.key] = build_control(slot, param, visible=slot_param(slot, default) is not None)
                backdrop = gr.Radio([(handlers.BACKDROP_LABELS.get(b, b), b) for b in BACKDROPS],
                                    value="checkerboard", label="Composite over")
                colour = gr.ColorPicker(value="#00b140", label="Colour", visible=False)
                backdrop_file = gr.File(label="Picture to composite over", visible=False)
                run_button = gr.Button("Run", variant="primary", elem_id=f"run-{family}")
            with gr.Column(scale=5):
                if family == painter_home:
                    _painter_panel(shared)
                if family == plate_home:
                    _plate_panel(shared)
                if not has_inputs:
                    panel = _result_panel(family)
        if has_inputs:
            panel = _result_panel(family)

    method.change(handlers.select_method(slots), [method],
                  [info, accordion, weights_status, checkpoint, *controls.values()],
                  api_name=f"select_method_{family}", concurrency_limit=None, show_progress="hidden")
    use.click(handlers.on_use_weights, [method, checkpoint, upload], [weights_status],
              api_name=f"use_weights_{family}", concurrency_id=HEAVY, concurrency_limit=workers())
    download.click(handlers.friendly(downloads.on_download_in_tab), [method, checkpoint],
                   [weights_status, download, download_note], api_name=f"download_weights_{family}",
                   concurrency_id="download", concurrency_limit=4)
    run_button.click(
        handlers.run_method(slots),
        inputs=[method, shared.photo_file, shared.input_mode, shared.painter, shared.plate_file,
                shared.ground_truth_file, backdrop, colour, backdrop_file],
        inputs_kwargs=controls,
        outputs=panel.outputs(),
        api_name=f"run_{family}", concurrency_id=HEAVY, concurrency_limit=workers(),
    )
    gr.on([backdrop.change, colour.change, backdrop_file.upload], handlers.on_backdrop,
          [panel.components["state"], backdrop, colour, backdrop_file],
          [panel.components["composite"], colour, backdrop_file],
          api_name=f"composite_{family}", concurrency_limit=4, show_progress="hidden")
    return method, panel


# --------------------------------------------------------------------------- compare and methods

def _compare_tab(shared: Shared):
    with gr.Tab("Compare", id="compare", elem_id="tab-compare"):
        gr.Markdown("Runs each ticked method on the photo with its default parameters, using the trimap or "
                    "scribbles from the painter and the background plate if the method takes them. Methods whose "
                    "inputs or weights are missing are skipped and listed.")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chosen = gr.CheckboxGroup(compare.compare_choices(), label="Methods", elem_id="compare-methods")
            with gr.Column(scale=1, min_width=220):
                backdrop = gr.Radio([(handlers.BACKDROP_LABELS[b], b) for b in BACKDROPS if b != "image"],
                                    value="checkerboard", label="Composite over")
                run_button = gr.Button("Compare", variant="primary", elem_id="run-compare")
        status = gr.Markdown(elem_id="status-compare", elem_classes=["status-line"])
        gallery = gr.Gallery(label="Alphas and composites", format="png", columns=4, height="auto",
                             object_fit="contain", preview=False, fit_columns=False, elem_id="compare-gallery",
                             elem_classes=["compact-gallery"],
                             buttons=["download", "fullscreen"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                slider = gr.ImageSlider(label="Slide between two results", format="png", type="numpy",
                                        interactive=False, max_height=520)
            with gr.Column(scale=1, min_width=220):
                # Custom values pass so that a stale choice gets the app's message, not Gradio's.
                left = gr.Dropdown([], label="Left", elem_id="slider-left", allow_custom_value=True)
                right = gr.Dropdown([], label="Right", elem_id="slider-right", allow_custom_value=True)
                kind = gr.Radio([("Alpha", "alpha"), ("Composite", "composite")], value="alpha", label="Show")
        table = gr.Dataframe(label="Metrics against the ground truth", visible=False, interactive=False, wrap=True)
        with gr.Row(equal_height=False):
            time_plot = gr.Plot(label="Time per method", format="png")
            gr.Column()  # keeps the chart half-width
        state = gr.State(None)
    run_button.click(
        compare.on_compare,
        [chosen, shared.photo_file, shared.input_mode, shared.painter, shared.plate_file,
         shared.ground_truth_file, backdrop],
        [status, gallery, slider, left, right, table, time_plot, state],
        api_name="compare", concurrency_id=HEAVY, concurrency_limit=workers())
    gr.on([left.input, right.input, kind.input], compare.on_compare_slider, [state, left, right, kind], [slider],
          api_name="compare_slider", concurrency_limit=4, show_progress="hidden")


def _methods_tab():
    with gr.Tab("Methods", id="methods", elem_id="tab-methods"):
        with gr.Row():
            gr.Markdown("Every registered method, where it comes from, its licences and what it needs.")
            refresh = gr.Button("Refresh weights status", size="sm", scale=0, min_width=200)
        overview = gr.Markdown(card_text.methods_overview(), elem_id="methods-overview")
        checkpoint_ids = card_text.all_checkpoint_ids()
        with gr.Accordion("Download or upload a checkpoint", open=False, visible=bool(checkpoint_ids),
                          elem_id="methods-checkpoints"):
            gr.Markdown("**Download** fetches the chosen checkpoint from its published sources onto this server "
                        "and checks its checksum; methods also fetch theirs on first use. Already have the file? "
                        "Upload it: it is read without running any code in it and checked against its network "
                        "before it is used.")
            checkpoint = gr.Dropdown(checkpoint_ids, value=checkpoint_ids[0] if checkpoint_ids else None,
                                     label="Checkpoint", elem_id="methods-checkpoint")
            download, download_note = downloads.download_row(checkpoint_ids[0] if checkpoint_ids else None)
            upload = gr.File(label="Or upload the checkpoint file")
            use = gr.Button("Use this file")
            use_status = gr.Markdown(elem_id="methods-checkpoint-status")
        cards = []
        for family, title in FAMILIES.items():
            if methods(family):
                gr.Markdown(f"### {title}")
            for spec in methods(family):
                with gr.Accordion(f"{spec.name} — {spec.card.authors.split(',')[0]} et al., {spec.card.year}"
                                  if "," in spec.card.authors else f"{spec.name} — {spec.card.year}", open=False):
                    cards.append(gr.Markdown(card_text.method_card(spec), elem_classes=["method-card"]))
    refresh.click(card_text.on_refresh_methods, None, [overview, *cards], api_name="refresh_methods",
                  concurrency_limit=None, show_progress="hidden")
    use.click(handlers.on_use_any_weights, [checkpoint, upload], [use_status, overview], api_name="use_weights",
              concurrency_id=HEAVY, concurrency_limit=workers())
    checkpoint.change(downloads.on_checkpoint_choice, [checkpoint], [download, download_note],
                      api_name="choose_checkpoint", concurrency_limit=None, show_progress="hidden")
    download.click(handlers.friendly(downloads.on_download_any), [checkpoint],
                   [use_status, overview, download, download_note], api_name="download_weights",
                   concurrency_id="download", concurrency_limit=4)


# --------------------------------------------------------------------------- the app

HEADER = f"""# {TITLE}
Cut a subject out of a photo with classical and deep matting methods, and compare them.
**1.** Upload a photo (or pick an example below) · **2.** choose a tab: paint a trimap or strokes, run an
automatic method, or give a background plate · **3.** add a ground-truth alpha to get error maps and metrics.
"""


def _examples(shared: Shared, outputs: list):
    """The example rows (returned, for the first look), or [] when they cannot be prepared."""
    try:
        rows = ensure_examples()
    except Exception:  # noqa: BLE001 - examples are a convenience; the app must start without them
        log.exception("Could not prepare the examples")
        return []
    gr.Examples(
        [example.row() for example in rows],
        inputs=[shared.photo_file, shared.trimap_file, shared.ground_truth_file, shared.plate_file],
        outputs=outputs, fn=handlers.on_example, run_on_click=True, cache_examples=False,
        example_labels=[example.label for example in rows], label="Examples (click one)",
        api_name="load_example", api_visibility="public", elem_id="examples",
    )
    gr.Markdown(LICENSE_NOTE, elem_classes=["small-note"])
    return rows


def build_demo() -> gr.Blocks:
    painter_home = _home_family(("trimap", "scribbles"))
    plate_home = _home_family(("background",))
    with WorkbenchBlocks(title=TITLE, delete_cache=(3600, 3 * 3600)) as demo:  # inputs Gradio refuses get words
        gr.Markdown(HEADER, elem_id="header")
        shared = Shared(
            photo_file=gr.File(label="Photo (PNG, JPEG, WebP, TIFF or BMP)", elem_id="photo-file", height=150, render=False),
            ground_truth_file=gr.File(label="Ground-truth alpha (optional)", elem_id="ground-truth-file", height=150,
                                      render=False),
            plate_file=gr.File(label="Background plate: the same shot without the subject", elem_id="plate-file", height=150,
                               render=False),
            trimap_file=gr.File(label="Upload a trimap (white / grey / black)", elem_id="trimap-file", height=150,
                                render=False),
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                shared.photo_file.render()
                shared.photo_note = gr.Markdown("No photo yet.", elem_id="photo-note")
            with gr.Column(scale=2):
                shared.ground_truth_file.render()
                shared.ground_truth_note = gr.Markdown("No ground truth: metrics and error maps are off.",
                                                       elem_id="ground-truth-note")
            with gr.Column(scale=2, min_width=200):
                shared.photo_preview = gr.Image(label="Photo", interactive=False, height=200, format="png",
                                                elem_id="photo-preview", buttons=["fullscreen"])
        examples_slot = gr.Column()
        opening = first_look.plan()
        tab_parts = {}
        with gr.Tabs(elem_id="tabs", selected=opening[0] if opening else None) as tabs:
            for family in FAMILIES:
                if family == prompts_tab.FAMILY:  # that family has its own tab (click to select)
                    continue
                parts = _family_tab(family, shared, painter_home, plate_home)
                if parts is not None:
                    tab_parts[family] = parts
            prompts_tab.build(shared, _result_panel, HEAVY, workers())
            video_tab.build_video_tab(HEAVY, workers())
            _compare_tab(shared)
            _methods_tab()
        for name in ("painter", "input_mode", "painter_note", "plate_preview", "plate_note"):
            if getattr(shared, name) is None:  # a panel whose family has no method: keep the wiring valid
                setattr(shared, name, _hidden_stand_in(name))
        with examples_slot:
            rows = _examples(shared, [shared.photo_preview, shared.painter, shared.input_mode, shared.photo_note,
                                      shared.painter_note, shared.plate_preview, shared.plate_note,
                                      shared.ground_truth_note])
        first_look.wire(demo, tabs, shared, tab_parts, rows[0] if rows else None)
        for unplaced in (shared.trimap_file, shared.plate_file):
            if not unplaced.is_rendered:  # no registered method takes it
                unplaced.visible = False
                unplaced.render()

        photo_outputs = [shared.photo_preview, shared.painter, shared.photo_note, shared.plate_preview,
                         shared.plate_note]
        shared.photo_file.upload(handlers.on_photo, [shared.photo_file, shared.plate_file], photo_outputs,
                                 api_name="load_photo", concurrency_limit=4, show_progress="hidden")
        shared.photo_file.clear(handlers.on_photo, [shared.photo_file, shared.plate_file], photo_outputs,
                                api_name="clear_photo", concurrency_limit=None, show_progress="hidden")
        for trigger, name in ((shared.ground_truth_file.upload, "check_ground_truth"),
                              (shared.ground_truth_file.clear, "clear_ground_truth")):
            trigger(handlers.on_ground_truth, [shared.photo_file, shared.ground_truth_file],
                    [shared.ground_truth_note], api_name=name, concurrency_limit=None, show_progress="hidden")
    return demo


def _hidden_stand_in(name: str):
    if name == "painter":
        return gr.ImageEditor(visible=False, type="numpy", image_mode="RGBA", format="png")
    if name == "input_mode":
        return gr.Radio(list(handlers.INPUT_MODES), value=handlers.MODE_TRIMAP, visible=False)
    if name == "plate_preview":
        return gr.Image(visible=False, format="png")
    return gr.Markdown(visible=False)
