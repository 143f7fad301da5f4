"""The ``plot`` sink (pipeline/ops/plots.py): each kind makes a real PNG; inputs it cannot
draw sensibly are refused while the graph is built, naming the parameter."""

from __future__ import annotations

from pathlib import PurePosixPath

import dask.array as da
import numpy as np
import pytest
from matplotlib import image
from matplotlib.backends.backend_agg import FigureCanvasAgg

from pipeline.errors import InputError, OpError
from pipeline.ops.formats import Pending
from pipeline.ops.plots import PLOT_MAX_ELEMENTS, figure, heatmap_size
from tests.helpers import call
from tests.ops import COPYING, darr, dask_backend, rng  # noqa: F401

pytestmark = pytest.mark.usefixtures("dask_backend")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ctx(make_ctx):
    c = make_ctx("plot")
    c.staging_dir.mkdir(parents=True)
    return c


def plot(ctx, x, path="p.png", **params):
    """Run the plot op as the runner does; return the staged PNG's path."""
    pending = call(ctx, "plot", x, path=path, **params)
    assert isinstance(pending, Pending) and pending.finish is not None
    assert ctx.outputs[-1] == PurePosixPath(path)  # relative to the run folder
    staged = ctx.staging_dir / path
    assert not staged.exists(), "a sink must write nothing before the compute"
    pending.finish(pending.collection.compute(scheduler="sync"))
    return staged


def check_png(path, size=(450, 800)):  # 8 x 4.5 in at 100 dpi
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = image.imread(path)
    assert pixels.shape[:2] == size
    assert pixels[..., :3].std() > 0.05  # something is drawn, not a blank canvas


@pytest.mark.parametrize("kind, shape, extra", [
    ("line", (257,), {"log": True, "xlabel": "bin", "ylabel": "power"}),
    ("line", (100, 3), {}),
    ("heatmap", (40, 60), {"log": True}),
    ("bar", (12,), {}),
    ("hist", (30, 20), {"bins": 20, "log": True}),
])
def test_each_kind_makes_a_png(ctx, backend, rng, kind, shape, extra):
    x = np.abs(rng.standard_normal(shape)) + 0.1
    width, height = heatmap_size(shape) if kind == "heatmap" else (8, 4.5)
    check_png(plot(ctx, darr(backend, x), kind=kind, title=f"a {kind}", **extra),
              (round(height * 100), round(width * 100)))


def rendered(fig):
    FigureCanvasAgg(fig).draw()  # constrained layout places the axes when drawing
    return fig.canvas.get_renderer()


@pytest.mark.parametrize("shape, ratio", [((40, 60), 1.5), ((300, 300), 1.0),
                                          ((200, 50), 0.25), ((10, 1000), 4.0)])
def test_heatmap_cells_are_square_up_to_4_to_1(rng, shape, ratio):
    """Not stretched to the 16:9 canvas: the image's width / height is the array's
    columns / rows, up to 4:1 (beyond it the cells stretch instead of the plot
    becoming a sliver)."""
    fig = figure(rng.random(shape), "heatmap", {"title": "t"}, False, 10)
    box = fig.axes[0].get_images()[0].get_window_extent(rendered(fig))
    assert box.width / box.height == pytest.approx(ratio, rel=0.03)
    assert min(box.width, box.height) > 100  # pixels: a readable plot


def test_dollars_in_titles_and_labels_stay_literal(rng):
    """matplotlib reads $...$ as math (the dollars vanish, the text between is italic):
    the labels are drawn as plain text, so every dollar sign takes its width."""
    def width(text):
        fig = figure(rng.random(10), "line", {"title": text, "xlabel": text}, False, 10)
        renderer = rendered(fig)
        ax = fig.axes[0]
        return ax.title.get_window_extent(renderer).width, \
            ax.xaxis.label.get_window_extent(renderer).width

    with_dollars, without = width("between $5 and $10"), width("between 5 and 10")
    assert all(a > b for a, b in zip(with_dollars, without))


def test_hist_skips_nan(ctx, backend):
    x = np.array([1.0, np.nan, 2.0, np.inf, 2.5] * 10)
    check_png(plot(ctx, darr(backend, x), kind="hist"))


def test_copying_backend_brings_the_values_to_the_host(tmp_path, rng):
    from pipeline.ops.context import Context
    from pipeline.spec import Stage

    stage = Stage(id="s", op="plot", inputs=(), input_style="none", params={}, index=0)
    ctx = Context(stage=stage, backend=COPYING, base_dir=tmp_path, output_dir=tmp_path / "o",
                  staging_dir=tmp_path / "o" / ".s")
    ctx.staging_dir.mkdir(parents=True)
    check_png(plot(ctx, darr(COPYING, rng.standard_normal(50) ** 2 + 1), log=True))


@pytest.mark.parametrize("params, where, fragment", [
    ({"path": "p.jpg"}, "path", "is not a .png file"),
    ({"kind": "bar", "x": (3, 4)}, "kind", "a bar plot needs a 1-D array"),
    ({"kind": "bar", "x": (501,)}, "kind", "501 bars is too many"),
    ({"kind": "heatmap", "x": (10,)}, "kind", "a heatmap needs a 2-D array"),
    ({"kind": "line", "x": (4, 4, 4)}, "kind", "a line plot needs a 1-D or 2-D array"),
    ({"kind": "line", "x": (5, 21)}, "kind", "21 columns is too many"),
    ({"bins": 0, "kind": "hist"}, "bins", "bins must be at least 1"),
])
def test_refusals_name_the_parameter(ctx, backend, params, where, fragment):
    params = dict(params)  # shared by every backend's copy of the test
    shape = params.pop("x", (10,))
    x = darr(backend, np.ones(shape))
    with pytest.raises(OpError, match=fragment) as e:
        call(ctx, "plot", x, **{"path": "p.png", **params})
    assert e.value.where == where
    assert ctx.outputs == []  # refused before a staged path was handed out


def test_unknown_kind_is_a_binding_error(ctx, backend):
    with pytest.raises(InputError, match="expected line | heatmap | bar | hist, got 'pie'"):
        call(ctx, "plot", darr(backend, np.ones(3)), path="p.png", kind="pie")


def test_complex_is_refused_with_a_fix(ctx, backend):
    x = darr(backend, np.ones(4, dtype=complex))
    with pytest.raises(OpError, match=r"cannot plot complex values .*abs\(z\)"):
        call(ctx, "plot", x, path="p.png")


def test_too_large_says_to_reduce_first(ctx, backend):
    n = PLOT_MAX_ELEMENTS // 1000 + 1
    x = da.zeros((n, 1000), chunks=(n, 1000))  # lazy: nothing is allocated
    with pytest.raises(OpError, match=r"too many to plot .*reduce, slice or histogram"):
        call(ctx, "plot", x, path="p.png", kind="hist")
