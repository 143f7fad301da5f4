"""report.html: the figures of report.json, a chart, and nothing fetched from the network."""

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib import image

from pipeline import report_html
from pipeline.report import human_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BLUE, GREEN = (0x4C, 0x72, 0xB0), (0x55, 0xA8, 0x68)  # wall-time and host->device bars


def stage(sid, op, wall, compute, h2d, d2h, **extra):
    return {"id": sid, "op": op, "computed": True, "wall_s": wall, "compute_s": compute,
            "tasks": 4, "h2d_bytes": h2d, "d2h_bytes": d2h, "h2d_s": 0.0, "d2h_s": 0.0,
            **extra}


DOC = {
    "workflow": {"name": "demo", "description": "a <b>bold</b> & risky description",
                 "path": "wf.yaml", "spec": {"name": "demo", "stages": [{"id": "x"}]}},
    "backend": "gpu",
    "cluster": {"kind": "LocalCUDACluster", "address": "tcp://127.0.0.1:1", "n_workers": 2,
                "dashboard": "http://127.0.0.1:8787/status"},
    "versions": {"dask": "2026.7.1", "python": "3.11.7"},
    "started": "2026-01-01T00:00:00+00:00",
    "stages": [
        stage("load", "read", 1.25, 2.5, 3 << 30, 0,
              output={"kind": "array", "shape": [1000, 10], "dtype": "float64",
                      "bytes": 80000, "chunks": 4}),
        stage("fft<1>", "rfft", 0.5, 1.75, 0, 0,
              output={"kind": "array", "shape": [1000, 6], "dtype": "complex128",
                      "bytes": 96000, "chunks": 4}),
        stage("save", "write", 0.125, 0.0625, 0, 123_456_789, output={"kind": "sink"}),
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


def test_write_is_atomic(tmp_path):
    report_html.write(tmp_path / "report.html", DOC)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_cpu_run_without_transfers_draws_a_note():
    doc = {**DOC, "stages": [stage("a", "random", 0.1, 0.1, 0, 0, output={"kind": "sink"})],
           "totals": {**DOC["totals"], "h2d_bytes": 0, "d2h_bytes": 0}}
    assert chart_of(report_html.render(doc)).shape[1] == 1000


def test_stage_without_separate_times_shows_a_dash():
    # dataframe stages: dask-expr fuses their tasks, so the report has no time of their own
    doc = {**DOC, "stages": [stage("g", "groupby", None, None, 0, 0, output={"kind": "sink"}),
                             *DOC["stages"]]}
    page = report_html.render(doc)
    assert row(page, "g")[:4] == ["g", "groupby", "-", "-"]
    chart_of(page)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") \
    or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium")
def test_screenshot_in_headless_chromium_shows_the_chart(tmp_path):
    """The page as a browser shows it, offline: the chart's bars are on screen."""
    page = tmp_path / "report.html"
    report_html.write(page, DOC)
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1200",
                    f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=90, check=True)
    pixels = (image.imread(shot)[..., :3] * 255).round().astype(int)
    for color in (BLUE, GREEN):
        near = (np.abs(pixels - np.array(color)).max(axis=-1) <= 6).sum()
        assert near > 500, f"too few pixels of the bar colour {color}: {near}"
