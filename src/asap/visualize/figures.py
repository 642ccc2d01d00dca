"""Figures: a pair's verdict (image + box, highlighted caption, attention map; paper Figure 5) and F1 per type
(paper Figure 6). Built on `matplotlib.figure.Figure` with the Agg canvas: no pyplot state, safe in notebooks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from asap.inference.predictor import Prediction
from asap.inference.verdict import Verdict

F1_TYPES = ("FS", "FA", "TS", "TA")
DISPLAY_MAX_SIDE = 512  # images are drawn from a thumbnail of at most this side (coordinates stay in pixels)
PRED_COLOUR, TRUE_COLOUR = "#e41a1c", "#00c853"
UNREAD_COLOUR = "#dddddd"


@dataclass
class GroundTruth:
    """Known labels to draw next to a prediction: the face box (x1, y1, x2, y2 pixels) and manipulated words."""

    box: tuple[float, float, float, float] | None = None
    word_indices: list[int] = field(default_factory=list)  # indices into the verdict's words


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A Figure with its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def upsample_attention(attention: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(G, G) patch-grid attention -> (H, W) for a (W, H) image, bilinear (the map laid over the image)."""
    width, height = size
    grid = torch.as_tensor(np.asarray(attention), dtype=torch.float32)[None, None]  # (1, 1, G, G)
    return F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def verdict_figure(prediction: Prediction, truth: GroundTruth | None = None) -> Figure:
    """Image + predicted (and true) box | attention heat map over the image; below, the highlighted caption."""
    verdict = prediction.verdict
    fig = new_figure((10, 6.4))
    grid = fig.add_gridspec(2, 2, height_ratios=[3.0, 1.2])
    ax_box, ax_att, ax_text = (
        fig.add_subplot(grid[0, 0]),
        fig.add_subplot(grid[0, 1]),
        fig.add_subplot(grid[1, :]),
    )
    thumb = _thumbnail(prediction.image)
    _draw_image(ax_box, thumb, prediction.image.size)
    _draw_box(ax_box, verdict.box, PRED_COLOUR, f"predicted (face p={_face_probability(verdict):.2f})", "-")
    if truth is not None and truth.box is not None:
        _draw_box(ax_box, truth.box, TRUE_COLOUR, "true", "--")
    ax_box.legend(loc="lower right", fontsize=7, framealpha=0.7)
    ax_box.set_title("image and face box", fontsize=9)
    _draw_attention(ax_att, thumb, prediction.image.size, prediction.attention)
    ax_att.set_title(f"text-to-image attention (averaged over {verdict.attention_over})", fontsize=9)
    fig.suptitle(_headline(verdict), fontsize=10)
    _draw_caption(
        fig, ax_text, verdict, set(truth.word_indices) if truth else set()
    )  # last: measures the layout
    return fig


def save_verdict_figure(
    prediction: Prediction, path: str | os.PathLike[str], truth: GroundTruth | None = None, dpi: int = 110
) -> Path:
    """`verdict_figure` written as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    verdict_figure(prediction, truth).savefig(path, dpi=dpi)
    return path


def _thumbnail(image: Image.Image) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE))
    return thumb


def _draw_image(ax: Axes, thumb: Image.Image, size: tuple[int, int], **kwargs: object) -> None:
    width, height = size
    ax.imshow(np.asarray(thumb), extent=(0, width, height, 0), **kwargs)  # pixel coordinates of the input
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_box(ax: Axes, box: Sequence[float], colour: str, label: str, style: str) -> None:
    x1, y1, x2, y2 = box
    ax.add_patch(
        Rectangle(
            (x1, y1),
            x2 - x1,
            y2 - y1,
            fill=False,
            edgecolor=colour,
            linewidth=2,
            linestyle=style,
            label=label,
        )
    )


def _draw_attention(ax: Axes, thumb: Image.Image, size: tuple[int, int], attention: np.ndarray) -> None:
    heat = upsample_attention(attention, thumb.size)  # (h, w) of the thumbnail
    _draw_image(ax, thumb.convert("L").convert("RGB"), size)
    width, height = size
    shown = ax.imshow(heat, extent=(0, width, height, 0), cmap="jet", alpha=0.5)
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)


def _face_probability(verdict: Verdict) -> float:
    p = verdict.type_probabilities
    return max(p["face_swap"], p["face_attribute"])


def _headline(verdict: Verdict) -> str:
    decision = "MANIPULATED" if verdict.is_fake else "real"
    types = "  ".join(f"{k} {v:.2f}" for k, v in verdict.type_probabilities.items())
    return f"P(manipulated) = {verdict.fake_probability:.2f} -> {decision}\n{types}"


def _word_colour(probability: float | None) -> tuple[float, float, float, float] | str:
    if probability is None:
        return UNREAD_COLOUR
    return colormaps["Reds"](0.08 + 0.85 * probability)


def _draw_caption(fig: Figure, ax: Axes, verdict: Verdict, true_words: set[int]) -> None:
    """The user's words, wrapped, each filled by its manipulation probability (framed when truly manipulated)."""
    ax.set_axis_off()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    fig.draw_without_rendering()  # lay out the axes first, so widths in axes fractions are right
    axes_box = ax.get_window_extent(renderer)
    line_height = 26 / max(axes_box.height, 1.0)
    x, y, gap = 0.0, 0.88, 11 / max(axes_box.width, 1.0)
    for i, word in enumerate(verdict.words):
        p = word.probability
        bbox = {"boxstyle": "round,pad=0.25", "facecolor": _word_colour(p), "linewidth": 0}
        if i in true_words:
            bbox |= {"edgecolor": TRUE_COLOUR, "linewidth": 2}
        text = ax.text(
            x,
            y,
            word.word,
            transform=ax.transAxes,
            fontsize=11,
            va="top",
            bbox=bbox,
            color="white" if p is not None and p > 0.6 else "black",
            fontweight="bold" if word.manipulated else "normal",
        )
        width = text.get_window_extent(renderer).width / axes_box.width
        if x > 0 and x + width > 1.0:  # wrap
            x, y = 0.0, y - line_height
            text.set_position((x, y))
        x += width + gap
    notes = [f"fill: P(word manipulated) (bold > {verdict.threshold:g}); grey: not read by the model"]
    if true_words:
        notes.append("green frame: truly manipulated")
    if verdict.truncated:
        notes.append("TEXT TRUNCATED: " + "; ".join(verdict.warnings))
    ax.text(0.0, 0.0, "   ".join(notes), transform=ax.transAxes, fontsize=7, color="#555555", va="bottom")


def plot_f1_per_type(metrics: Mapping[str, float], path: str | os.PathLike[str], title: str = "") -> Path:
    """The paper's Figure 6: F1 (x100) per manipulation type (FS, FA, TS, TA) as a bar chart PNG."""
    values = [float(metrics.get(f"F1_{t}", float("nan"))) for t in F1_TYPES]
    fig = new_figure((5, 3.2))
    ax = fig.add_subplot()
    bars = ax.bar(F1_TYPES, values, color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"])
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("F1 (x100)")
    ax.set_title(title or "F1 per manipulation type", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
