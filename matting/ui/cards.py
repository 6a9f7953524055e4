"""Method cards in Markdown: the one-line summary in each tab, the Methods tab's tables and full cards."""
from __future__ import annotations

from ..registry import methods
from ..spec import FAMILIES, INPUT_LABELS
from . import checkpoints
from .messages import scrub


def method_summary(spec) -> str:
    card = spec.card
    lines = [f"**Not runnable:** {spec.unavailable}"] if spec.unavailable else []
    lines += [
        f"**{spec.name}** — {card.authors}, *{card.venue}* ({card.year}). [Paper]({card.paper_url})",
        f"Needs: {spec.describe_needs()} · code: {card.code_license} · weights: {card.weights_license}",
        f"<details><summary>How it works</summary>\n\n{card.how_it_works}"
        + (f"\n\n{card.notes}" if card.notes else "") + "\n\n</details>",
    ]
    return scrub("\n\n".join(lines))  # a card is read at the browser: no server settings or paths


def methods_overview() -> str:
    """One table per tab: where each method comes from, its licences, what it needs, its weights."""
    parts = []
    for family, title in FAMILIES.items():
        if not methods(family):
            continue
        rows = [f"#### {title}", "", "| Method | Needs | Code licence | Weights licence | Weights |",
                "|---|---|---|---|---|"]
        for spec in methods(family):
            card = spec.card
            rows.append(f"| **{spec.name}** ({card.year}) | {spec.describe_needs()} | {card.code_license} | "
                        f"{card.weights_license} | {checkpoints.short_status(spec)} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts)


def method_card(spec) -> str:
    from .controls import describe_range

    card = spec.card
    params = "\n".join(
        f"- **{p.title}** (`{p.name}`, default `{p.default}`): {p.help}{describe_range(p)}"
        + (f" Choices: {', '.join(f'`{c}`' for c in p.choices)}." if p.choices else "")
        for p in spec.params) or "- none"
    outputs = "\n".join(f"- **{o.name}** ({o.kind}): {o.description}" for o in spec.outputs) or "- alpha only"
    parts = [
        f"*{card.paper}* — {card.authors}. {card.venue}, {card.year}. [Paper]({card.paper_url})",
        f"**Tab:** {FAMILIES.get(spec.family, spec.family)} · **Id:** `{spec.id}` · **Needs:** {spec.describe_needs()}"
        + (f" · optional: {', '.join(INPUT_LABELS[n] for n in spec.optional_inputs)}" if spec.optional_inputs else ""),
        f"**Code:** {card.code} ({card.code_license}) · **Weights licence:** {card.weights_license}",
        f"**How it works.** {card.how_it_works}",
    ]
    if spec.unavailable:
        parts.insert(0, f"**Not runnable:** {spec.unavailable}")
    if card.notes:
        parts.append(f"**Notes.** {card.notes}")
    if spec.scribbles_note:
        parts.append(f"**Scribbles.** {spec.scribbles_note}")
    parts += [f"**Parameters**\n\n{params}", f"**Intermediate maps**\n\n{outputs}",
              f"**Weights**\n\n{checkpoints.status_markdown(spec)}"]
    return scrub("\n\n".join(parts))  # a card is read at the browser: no server settings or paths


def all_checkpoint_ids() -> list[str]:
    ids: list[str] = []
    for spec in methods():
        ids += [c for c in spec.weights if c not in ids]
    return ids


def on_refresh_methods():
    cards = [method_card(spec) for family in FAMILIES for spec in methods(family)]
    return methods_overview(), *cards
