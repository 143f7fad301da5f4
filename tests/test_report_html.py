"""report.html: the figures of report.json, a chart, and nothing fetched from the network."""

import base64
import html
import io
import re
import shutil
import subprocess
from xml.etree import ElementTree

import numpy as np
import pytest
from matplotlib import image

from pipeline import report_html
from pipeline.report import human_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BLUE, GREEN = (0x4C, 0x72, 0xB0), (0x55, 0xA8, 0x68)  # wall-time and host->device bars
ORANGE_NODE = (0xE5, 0xA1, 0x7B)  # the DAG node with most of the compute time


def stage(sid, op, wall, compute, h2d, d2h, **extra):
    return {"id": sid, "op": op, "computed": True, "wall_s": wall, "compute_s": compute,
            "tasks": 4, "h2d_bytes": h2d, "d2h_bytes": d2h, "h2d_s": 0.0, "d2h_s": 0.0,
            **extra}


T0 = 1_795_000_000.0  # the scheduler's clock: seconds since the epoch
DOC = {
    "workflow": {"name": "demo", "description": "a <b>bold</b> & risky description",
                 "path": "wf.yaml", "spec": {"name": "demo", "stages": [{"id": "x"}]}},
    "backend": "gpu",
    "cluster": {"kind": "LocalCUDACluster", "address": "tcp://127.0.0.1:1", "n_workers": 2,
                "dashboard": "http://127.0.0.1:8787/status"},
    "versions": {"dask": "2026.7.1", "python": "3.11.7"},
    "started": "2026-01-01T00:00:00+00:00",
    "performance_report": "performance-report.html",
    "stages": [
        stage("load", "read", 1.25, 2.5, 3 << 30, 0, start=T0, stop=T0 + 1.25, upstream=[],
              output={"kind": "array", "shape": [1000, 10], "dtype": "float64",
                      "bytes": 80000, "chunks": 4}),
        stage("fft<1>", "rfft", 0.5, 1.75, 0, 0, start=T0 + 1.0, stop=T0 + 1.5,
              upstream=["load"], output={"kind": "array", "shape": [1000, 6],
                                         "dtype": "complex128", "bytes": 96000, "chunks": 4}),
        stage("save", "write", 0.125, 0.0625, 0, 123_456_789, start=T0 + 1.5,
              stop=T0 + 1.625, upstream=["fft<1>"], output={"kind": "sink"}),
    ],
    "totals": {"wall_s": 3.5, "compute_s": 4.3125, "h2d_bytes": 3 << 30,
               "d2h_bytes": 123_456_789},
    "outputs": [{"path": "/runs/demo/y.npy", "bytes": 80128}],
    "warnings": ["chunks are small"],
}


@pytest.fixture(scope="module")
def page() -> str:
    return report_html.render(DOC)


def chart_of(page: str) -> np.ndarray:
    src = re.search(r'<img id="chart"[^>]* src="data:image/png;base64,([^"]+)"', page)
    png = base64.b64decode(src.group(1))
    assert png.startswith(PNG_SIGNATURE)
    return image.imread(io.BytesIO(png), format="png")


def row(page: str, sid: str) -> list[str]:
    tr = re.search(rf'<tr id="stage-{re.escape(sid)}">(.*?)</tr>', page).group(1)
    return [re.sub(r"<[^>]+>", "", td) for td in re.findall(r"<td[^>]*>(.*?)</td>", tr)]


def test_each_stage_row_holds_the_report_figures(page):
    for s in DOC["stages"]:
        cells = row(page, s["id"].replace("<", "&lt;").replace(">", "&gt;"))
        assert cells[:7] == [s["id"].replace("<", "&lt;").replace(">", "&gt;"), s["op"],
                             f"{s['wall_s']:.3f}", f"{s['compute_s']:.3f}", "4",
                             human_bytes(s["h2d_bytes"]), human_bytes(s["d2h_bytes"])]
        # exact byte counts on hover
        assert f'title="{s["h2d_bytes"]:,} bytes"' in page
    assert row(page, "load")[7:] == ["1000x10 float64", human_bytes(80000)]
    assert "3.500 s" in page and "4.312 s" in page  # totals
    assert "3,221,225,472 bytes" in page and "123,456,789 bytes" in page
    assert "LocalCUDACluster" in page and "2026.7.1" in page and "y.npy" in page
    assert "warning: chunks are small" in page


def test_chart_is_an_embedded_png(page):
    height, width, _ = chart_of(page).shape
    assert width == 1000 and height > 200


def test_text_is_escaped_and_nothing_is_fetched(page):
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt; &amp; risky" in page
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no remote resources
    assert 'href="performance-report.html"' in page  # the one link: a sibling file


def test_no_link_to_a_performance_report_the_run_did_not_write(tmp_path):
    path = tmp_path / "report.html"
    report_html.write(path, {**DOC, "performance_report": None})
    assert "performance-report" not in path.read_text()


def test_write_is_atomic(tmp_path):
    report_html.write(tmp_path / "report.html", DOC)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")


def cpu_doc(stages):
    return {**DOC, "backend": "cpu", "stages": stages,
            "totals": {**DOC["totals"], "h2d_bytes": 0, "d2h_bytes": 0}}


def test_host_device_panel_only_where_bytes_moved(page):
    assert panels(page) == ["time", "transfers"]
    assert chart_of(page).shape[1] == 1000  # 2 + 4 inches per panel, at 100 dpi
    cpu = report_html.render(cpu_doc([stage("a", "random", 0.1, 0.1, 0, 0,
                                            output={"kind": "sink"})]))
    assert panels(cpu) == ["time"] and chart_of(cpu).shape[1] == 600
    assert "No bytes moved between host and device" in cpu


def panels(page: str) -> list[str]:
    return re.search(r'<img id="chart"[^>]* data-panels="([^"]*)"', page).group(1).split()


def test_stage_without_separate_times_shows_a_dash():
    # no figure (null in report.json), or no task of its own (no start): a dash, not 0
    doc = {**DOC, "stages": [stage("g", "groupby", None, None, 0, 0, output={"kind": "sink"}),
                             stage("p", "pick", 0.0, 0.0, 0, 0, output={"kind": "sink"}),
                             *DOC["stages"]]}
    page = report_html.render(doc)
    assert row(page, "g")[:4] == ["g", "groupby", "-", "-"]
    assert row(page, "p")[:4] == ["p", "pick", "-", "0.000"]
    chart_of(page)


def test_table_has_the_other_and_run_rows_and_says_what_overlaps():
    # the same rows and notes as the terminal's table (pipeline.report.table)
    other = {"compute_s": 0.25, "tasks": 3, "h2d_bytes": 0, "d2h_bytes": 0}
    doc = {**DOC, "totals": {**DOC["totals"], "other": other},
           "stages": [*DOC["stages"][:2], {**DOC["stages"][2], "shares_with": ["load"]}]}
    page = report_html.render(doc)
    cells = [re.sub(r"<[^>]+>", "", td) for td in re.findall(
        r"<td[^>]*>(.*?)</td>", re.search(r'<tr id="other">(.*?)</tr>', page).group(1))]
    assert cells[:5] == ["(other)", "", "", "0.250", "3"]
    assert re.search(r'<tr class="total"><td>\(run\)</td>', page)
    assert ">total<" not in page  # a stage may be called total: no row takes its name
    # load 0-1.25 s, fft 1.0-1.5 s, save 1.5-1.625 s: 1.875 s of walls in 1.625 s
    assert "stages overlap: their wall times add up to 1.88 s in 1.62 s" in page
    assert "save shares tasks with load (computed once, counted there)" in page
    quiet = report_html.render({**DOC, "totals": {**DOC["totals"], "other": {
        **other, "compute_s": 0.001, "tasks": 0}}})
    assert 'id="other"' not in quiet and "shares tasks" not in quiet


def table_stage(sid, op, rows, wall=None, **extra):
    return stage(sid, op, wall, wall, 0, 0, output={"kind": "frame", "columns": ["a"],
                                                    "partitions": 2, "rows": rows}, **extra)


PURPLE = (0x81, 0x72, 0xB3)  # the rows bars


def colour_pixels(pixels: np.ndarray, colour) -> int:
    rgb = (pixels[..., :3] * 255).round().astype(int)
    return int((np.abs(rgb - np.array(colour)).max(axis=-1) <= 6).sum())


def test_table_stages_are_charted():
    """Table stages chart their output rows (16 and 20 million alike, on a log axis) and,
    where the report has them, their times; an axis of -0.04..0.04 is never drawn."""
    untimed = cpu_doc([table_stage("flights", "random_table", 20_000_000),
                       table_stage("routes", "groupby", 6000),
                       table_stage("airlines", "read", 16)])
    page = report_html.render(untimed)
    assert panels(page) == ["rows"]
    assert colour_pixels(chart_of(page), PURPLE) > 2000
    assert "No stage has a time of its own" in page and 'id="timeline"' not in page
    timed = cpu_doc([table_stage("flights", "random_table", 20_000_000, 2.0,
                                 start=T0, stop=T0 + 2.0),
                     table_stage("routes", "groupby", 6000, 1.0, start=T0 + 1,
                                 stop=T0 + 2.0)])
    page = report_html.render(timed)
    assert panels(page) == ["time", "rows"]
    assert set(bars(page)) == {"flights", "routes"}


def test_nothing_to_chart_leaves_the_chart_out():
    page = report_html.render(cpu_doc([stage("g", "groupby", None, None, 0, 0,
                                             output={"kind": "sink"})]))
    assert 'id="chart"' not in page


def bars(page: str) -> dict[str, tuple[float, float]]:
    svg = re.search(r'<svg id="timeline".*?</svg>', page, re.S).group(0)
    ElementTree.fromstring(svg)  # well-formed
    return {html.unescape(m.group(1)): (float(m.group(2)), float(m.group(3)))
            for m in re.finditer(r'<rect class="bar" data-stage="([^"]*)" '
                                 r'data-start="([^"]*)" data-stop="([^"]*)"', svg)}


def test_timeline_has_a_bar_per_timed_stage_from_its_start_to_its_stop(page):
    assert bars(page) == {"load": (0.0, 1.25), "fft<1>": (1.0, 1.5), "save": (1.5, 1.625)}
    doc = {**DOC, "stages": [*DOC["stages"], {**stage("idle", "reduce", None, None, 0, 0),
                                              "computed": False}]}
    page = report_html.render(doc)
    assert set(bars(page)) == {"load", "fft<1>", "save"}
    assert re.search(r'class="untimed" data-stage="idle"[^>]*>not computed', page)


def graph(page: str):
    svg = re.search(r'<svg id="dag".*?</svg>', page, re.S).group(0)
    ElementTree.fromstring(svg)
    nodes = [html.unescape(n) for n in re.findall(r'<g class="node" data-stage="([^"]*)"', svg)]
    edges = {(html.unescape(a), html.unescape(b)) for a, b in
             re.findall(r'<path class="edge" data-from="([^"]*)" data-to="([^"]*)"', svg)}
    return nodes, edges


def test_dag_draws_every_stage_and_edge(page):
    assert graph(page) == (["load", "fft<1>", "save"],
                           {("load", "fft<1>"), ("fft<1>", "save")})
    # a report without "upstream" (an older one): the inputs named in the workflow
    spec = {"name": "demo", "stages": [
        {"id": "a", "op": "random"}, {"id": "b", "op": "random"},
        {"id": "m", "op": "matmul", "inputs": ["a", "b"]},
        {"id": "e", "op": "elementwise", "inputs": {"x": "m", "y": "a"}},
        {"id": "w", "op": "write", "input": "e"}]}
    doc = {**DOC, "workflow": {**DOC["workflow"], "spec": spec},
           "stages": [stage(s["id"], s["op"], 0.1, 0.1, 0, 0) for s in spec["stages"]]}
    nodes, edges = graph(report_html.render(doc))
    assert nodes == ["a", "b", "m", "e", "w"]
    assert edges == {("a", "m"), ("b", "m"), ("m", "e"), ("a", "e"), ("e", "w")}


def solid_png(path, colour, size=(120, 200)):
    pixels = np.zeros((*size, 3), dtype=np.uint8)
    pixels[...] = colour
    image.imsave(path, pixels)
    return path


MAGENTA = (0xE0, 0x20, 0xE0)


def test_png_outputs_are_embedded(tmp_path):
    png = solid_png(tmp_path / "plot.png", MAGENTA)
    (tmp_path / "data.npy").write_bytes(b"x")
    doc = {**DOC, "outputs": [{"path": str(png), "bytes": png.stat().st_size},
                              {"path": str(tmp_path / "data.npy"), "bytes": 1},
                              {"path": str(tmp_path / "gone.png"), "bytes": 5}]}
    page = report_html.render(doc)
    figures = re.findall(r'<figure class="plot" data-file="([^"]*)"><img [^>]*'
                         r'src="data:image/png;base64,([^"]+)"', page)
    assert [name for name, _ in figures] == ["plot.png"]
    assert base64.b64decode(figures[0][1]) == png.read_bytes()
    # written before the outputs move into place: the staged file is read, not an older
    # run's file of the same name
    staged = solid_png(tmp_path / "staged.png", (0, 200, 0))
    page = report_html.render(doc, {str(png): staged})
    embedded = re.search(r'data-file="plot.png"><img [^>]*base64,([^"]+)"', page).group(1)
    assert base64.b64decode(embedded) == staged.read_bytes()


def test_a_real_run_report(address, tmp_path):
    """From a real run: a bar per computed array stage, the DAG the planner found, and
    the plot it drew, embedded."""
    from pipeline.cli import main
    from tests.conftest import REPO

    out = tmp_path / "run"
    assert main(["run", str(REPO / "workflows" / "spectrum.yaml"), "--address", address,
                 "--quiet", "--output-dir", str(out), "--set", "stages.signal.shape=[512,64]",
                 "--set", "stages.signal.chunks=[128,64]"]) == 0
    page = (out / "report.html").read_text()
    timed = bars(page)
    assert {"signal", "spectrum", "power", "mean_power"} <= set(timed)
    assert all(0 <= a <= b for a, b in timed.values())
    nodes, edges = graph(page)
    assert nodes == ["signal", "spectrum", "power", "mean_power", "save", "plot"]
    assert edges == {("signal", "spectrum"), ("spectrum", "power"), ("power", "mean_power"),
                     ("mean_power", "save"), ("mean_power", "plot")}
    embedded = re.search(r'data-file="mean_power.png"><img [^>]*base64,([^"]+)"', page)
    assert base64.b64decode(embedded.group(1)) == (out / "mean_power.png").read_bytes()
    assert panels(page) == ["time"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") \
    or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium")
def test_screenshot_in_headless_chromium(tmp_path):
    """The page as a browser shows it, offline: the timeline at the top, the chart's
    bars, the DAG's shaded nodes and the embedded plot are all on screen."""
    png = solid_png(tmp_path / "plot.png", MAGENTA)
    page = tmp_path / "report.html"
    report_html.write(page, {**DOC, "outputs": [{"path": str(png), "bytes": 1}]})
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2600",
                    f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=90, check=True)
    pixels = image.imread(shot)
    top = pixels[:450]  # the summary and the timeline: the chart is further down
    assert colour_pixels(top, BLUE) > 1000, "no timeline bars"
    for colour, what in ((BLUE, "wall-time bars"), (GREEN, "host->device bars"),
                         (ORANGE_NODE, "the hottest DAG node"), (MAGENTA, "the plot")):
        assert colour_pixels(pixels, colour) > 500, f"too few pixels of {what}"
