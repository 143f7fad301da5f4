"""The ``plot`` sink: a small array drawn to a PNG with matplotlib (line, heatmap, bar, hist).

The array is computed on the cluster, only its (small) result crosses to the host, and
the figure is drawn on the client with matplotlib's object API (no pyplot: no GUI
backend, no global figure state), into the run's staging folder like every sink's file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import dask.array as da
import numpy as np

from pipeline.errors import OpError
from pipeline.ops.array_io import _to_host
from pipeline.ops.context import Context
from pipeline.ops.formats import Pending
from pipeline.ops.registry import op

# Past this a picture shows nothing more (a PNG has ~10^6 pixels), and the values would
# all have to cross to the client: reduce, slice or histogram first.
PLOT_MAX_ELEMENTS = 10_000_000
BAR_MAX = 500  # bars beyond this are thinner than a pixel
LINE_MAX_COLUMNS = 20  # a 2-D line plot draws one line per column
FIGSIZE, DPI = (8, 4.5), 100  # 800 x 450 pixels
HEATMAP_AREA = 5.0  # inches: the side of a square heatmap's plot area
HEATMAP_MAX_RATIO = 4.0  # beyond 4:1 cells stop being square, or the plot is a sliver


@op("plot", family="sink")
def plot(ctx: Context, x, *, path: str, kind: Literal["line", "heatmap", "bar", "hist"] = "line",
         title: str | None = None, xlabel: str | None = None, ylabel: str | None = None,
         log: bool = False, bins: int = 50):
    """Draw the input (a small array) to a PNG: line, heatmap, bar or hist.

    ``line``: a 1-D array, or a 2-D one as one line per column (at most 20); ``heatmap``:
    a 2-D array, with square cells (up to a 4:1 aspect; beyond it they stretch); ``bar``: a 1-D array (at most 500 bars); ``hist``: the histogram of all
    values (``bins``). ``log`` puts the values' axis (y; hist counts; heatmap colours)
    on a log scale. Inputs above 10 million elements are refused: reduce them first.

    ```yaml
    - id: plot_power
      op: plot
      input: mean_power
      path: mean_power.png     # relative to output_dir
      kind: line
      title: Mean power spectrum
      xlabel: frequency bin
      log: true
    ```
    """
    if Path(path).suffix.lower() != ".png":
        raise OpError(f"'{path}' is not a .png file", where="path",
                      hint="plot writes PNG images; name the file *.png")
    if not isinstance(x, da.Array):
        raise OpError("plot draws arrays; this input is a dataframe", where="input",
                      hint="turn the columns to plot into an array with to_array")
    if bins < 1:
        raise OpError(f"bins must be at least 1, got {bins}", where="bins")
    if np.issubdtype(x.dtype, np.complexfloating):
        raise OpError(f"cannot plot complex values ({x.dtype})", where="input",
                      hint="plot abs(z), real(z) or angle(z), made with an elementwise stage")
    _check_shape(kind, x.shape)
    target = ctx.output(path)
    labels = {"title": title, "xlabel": xlabel, "ylabel": ylabel}
    return Pending(_to_host(ctx, x),
                   finish=lambda value: draw(np.asarray(value), target, kind, labels, log, bins))


def _check_shape(kind: str, shape: tuple) -> None:
    known = not any(math.isnan(s) for s in shape)
    size = math.prod(shape) if known else None
    if size is not None and size > PLOT_MAX_ELEMENTS:
        raise OpError(f"{size:,} elements is too many to plot (at most "
                      f"{PLOT_MAX_ELEMENTS:,})", where="input",
                      hint="reduce, slice or histogram it first")
    ndim = len(shape)
    if kind == "heatmap" and ndim != 2:
        raise OpError(f"a heatmap needs a 2-D array, got {ndim}-D {shape}", where="kind")
    if kind == "bar":
        if ndim != 1:
            raise OpError(f"a bar plot needs a 1-D array, got {ndim}-D {shape}", where="kind")
        if known and shape[0] > BAR_MAX:
            raise OpError(f"{shape[0]:,} bars is too many (at most {BAR_MAX})", where="kind",
                          hint="use kind: line")
    if kind == "line":
        if ndim not in (1, 2):
            raise OpError(f"a line plot needs a 1-D or 2-D array, got {ndim}-D {shape}",
                          where="kind", hint="reduce it to 1-D first, or use kind: hist")
        if ndim == 2 and known and shape[1] > LINE_MAX_COLUMNS:
            raise OpError(f"a 2-D line plot draws one line per column: {shape[1]} columns "
                          f"is too many (at most {LINE_MAX_COLUMNS})", where="kind",
                          hint="use kind: heatmap, or select columns first")


def draw(values: np.ndarray, path: Path, kind: str, labels: dict, log: bool,
         bins: int) -> None:
    """Render ``values`` as a ``kind`` plot into the PNG file ``path``."""
    figure(values, kind, labels, log, bins).savefig(path, format="png")


def figure(values: np.ndarray, kind: str, labels: dict, log: bool, bins: int):
    """The matplotlib ``Figure`` of ``values`` as a ``kind`` plot."""
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    _check_shape(kind, values.shape)  # unknown sizes at build time are known now
    size = heatmap_size(values.shape) if kind == "heatmap" else FIGSIZE
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    if kind == "line":
        ax.plot(values)
        if log:
            ax.set_yscale("log")
    elif kind == "bar":
        ax.bar(np.arange(values.shape[0]), values)
        if log:
            ax.set_yscale("log")
    elif kind == "hist":
        finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
        ax.hist(finite.ravel(), bins=bins, log=log)
    else:  # heatmap
        positive = values[values > 0]
        norm = LogNorm(vmin=positive.min(), vmax=positive.max()) \
            if log and positive.size else None
        rows, cols = values.shape
        # cell height / width: 1 (square) unless the array is more lopsided than 4:1
        aspect = _clamped_ratio(values.shape) * max(cols, 1) / max(rows, 1)
        image = ax.imshow(values, aspect=aspect, interpolation="nearest", norm=norm,
                          origin="upper")
        fig.colorbar(image, ax=ax)
    for key, setter in (("title", ax.set_title), ("xlabel", ax.set_xlabel),
                        ("ylabel", ax.set_ylabel)):
        if labels.get(key):
            # plain text: "$5 to $10" must not turn into math with the dollars gone
            setter(labels[key], parse_math=False)
    return fig


def heatmap_size(shape: tuple[int, int]) -> tuple[float, float]:
    """Figure inches that give a heatmap square cells: the plot area follows the array's
    aspect (within HEATMAP_MAX_RATIO; a more lopsided array is stretched to that)."""
    ratio = _clamped_ratio(shape)
    width = HEATMAP_AREA / ratio ** 0.5  # about the same area, whatever the aspect
    height = HEATMAP_AREA * ratio ** 0.5
    # room for the colorbar to the right and the title and labels around
    return width + 1.6, height + 1.1


def _clamped_ratio(shape: tuple[int, int]) -> float:
    """The heatmap's height / width on screen: rows / columns, within 1:4 to 4:1."""
    rows, cols = shape
    return min(max(rows / max(cols, 1), 1 / HEATMAP_MAX_RATIO), HEATMAP_MAX_RATIO)
