"""Rich console rendering of a verdict: decision, type probabilities, box, and the caption coloured by word."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from asap.inference.verdict import Verdict


def word_style(probability: float | None, manipulated: bool) -> str:
    """Background from white (0) to red (1); dim when the model did not read the word."""
    if probability is None:
        return "dim"
    level = int(255 * (1 - probability))
    style = f"black on rgb(255,{level},{level})"
    return f"bold {style}" if manipulated else style


def caption_text(verdict: Verdict) -> Text:
    """The user's words, each highlighted by its manipulation probability."""
    text = Text()
    for i, word in enumerate(verdict.words):
        if i:
            text.append(" ")
        text.append(word.word, style=word_style(word.probability, word.manipulated))
    return text


def verdict_panel(verdict: Verdict) -> Panel:
    """One panel per pair."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    decision = "[bold red]MANIPULATED[/]" if verdict.is_fake else "[bold green]real[/]"
    table.add_row("P(manipulated)", f"{verdict.fake_probability:.3f}  {decision}")
    types = "  ".join(
        f"[bold]{k}[/] {p:.3f}" if k in verdict.predicted_types else f"{k} {p:.3f}"
        for k, p in verdict.type_probabilities.items()
    )
    table.add_row("types", types)
    x1, y1, x2, y2 = verdict.box
    table.add_row(
        "face box (px)",
        f"x1={x1:.0f} y1={y1:.0f} x2={x2:.0f} y2={y2:.0f}  (image {verdict.image_size[0]}x{verdict.image_size[1]})",
    )
    table.add_row("manipulated words", " ".join(verdict.manipulated_words) or "-")
    table.add_row("caption", caption_text(verdict))
    if verdict.figure:
        table.add_row("figure", verdict.figure)
    parts: list[Table | Text] = [table]
    for warning in verdict.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    # fits its content (never the full width of a log) and folds, never shortens, a long image path
    return Panel(Group(*parts), title=Text(verdict.image, overflow="fold"), title_align="left", expand=False)


def print_verdict(verdict: Verdict, console: Console | None = None) -> None:
    from asap.utils.console import console as default_console

    (console or default_console).print(verdict_panel(verdict))
