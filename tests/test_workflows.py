"""Every example workflow validates at its real size and runs at a small one."""

import json

import pytest

from pipeline.cli import main
from tests.conftest import REPO, requires_gpu

WORKFLOWS = sorted((REPO / "workflows").glob("*.yaml"))
# --set overrides that shrink each example to a test size. Every workflow needs an entry.
SMALL = {
    "spectrum": ["stages.signal.shape=[512,128]"],
    "table_aggregation": ["stages.flights.rows=5000", "stages.flights.partitions=4",
                          "stages.fleet.rows=100"],
    # the real workloads: tests/test_workloads.py checks these runs against references
    "welch_psd": ["stages.signal.shape=[6,5000]", "stages.signal.chunks=[4,-1]"],
    "pca": ["stages.factors.shape=[2000,128]", "stages.factors.chunks=[600,-1]"],
    "image_filter": ["stages.images.shape=[3,50,70]", "stages.images.chunks=[2,20,30]",
                     "stages.gaussian.size=21", "stages.gaussian.sigma=3.0"],
    "heat_diffusion": ["stages.noise.shape=[61,47]", "stages.noise.chunks=[16,12]",
                       "stages.row_index.stop=61", "stages.columns.stop=47",
                       "stages.initial.params={ci: 30.5, cj: 23.5}",
                       "stages.temperature.steps=37", "stages.temperature.halo=5"],
    "option_pricing": ["stages.shock.shape=[200000]", "stages.shock.chunks=[30000]",
                       "stages.path_shock.shape=[4000,252]",
                       "stages.path_shock.chunks=[700,-1]"],
    "var_risk": ["stages.shocks.shape=[20011,100]", "stages.shocks.chunks=[3000,-1]"],
    "flights_delays": [],  # the real data, 336,776 rows, is already small
}


def test_every_workflow_has_a_small_size():
    assert sorted(p.stem for p in WORKFLOWS) == sorted(SMALL)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_validates_at_full_size(path, capsys):
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_runs_small_on_cpu(path, address, tmp_path):
    args = ["run", str(path), "--backend", "cpu", "--address", address, "--quiet",
            "--output-dir", str(tmp_path)]
    for item in SMALL[path.stem]:
        args += ["--set", item]
    assert main(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outputs"] and all(o["bytes"] > 0 for o in report["outputs"])


# Tolerances for GPU vs CPU: float32 FFT / reduction order differs between cuFFT and
# pocketfft and between CuPy's and NumPy's reductions.
GPU_RTOL, GPU_ATOL = 1e-4, 1e-6


def _same_outputs(cpu_dir, gpu_dir):
    import numpy as np
    import pandas as pd

    for cpu_file in sorted(cpu_dir.iterdir()):
        gpu_file = gpu_dir / cpu_file.name
        suffix = cpu_file.suffix
        if suffix in (".html", ".png") or cpu_file.name == "report.json":
            assert gpu_file.exists(), gpu_file
        elif suffix == ".npy":
            np.testing.assert_allclose(np.load(gpu_file), np.load(cpu_file),
                                       rtol=GPU_RTOL, atol=GPU_ATOL)
        elif suffix == ".json":
            np.testing.assert_allclose(np.asarray(json.loads(gpu_file.read_text()), float),
                                       np.asarray(json.loads(cpu_file.read_text()), float),
                                       rtol=GPU_RTOL, atol=GPU_ATOL)
        elif suffix == ".zarr":
            import dask.array as da

            np.testing.assert_allclose(da.from_zarr(str(gpu_file)).compute(),
                                       da.from_zarr(str(cpu_file)).compute(),
                                       rtol=GPU_RTOL, atol=GPU_ATOL)
        elif suffix in (".parquet", ".csv"):
            read = pd.read_parquet if suffix == ".parquet" else pd.read_csv
            a, b = read(cpu_file), read(gpu_file)
            key = list(a.columns)
            pd.testing.assert_frame_equal(
                a.sort_values(key).reset_index(drop=True),
                b.sort_values(key).reset_index(drop=True), check_dtype=False, rtol=GPU_RTOL)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_gpu_run_matches_cpu(path, address, tmp_path):
    small = [a for item in SMALL[path.stem] for a in ("--set", item)]
    common = ["run", str(path), "--quiet", "--no-dashboard", *small]
    assert main([*common, "--backend", "cpu", "--address", address,
                 "--output-dir", str(tmp_path / "cpu")]) == 0
    assert main([*common, "--backend", "gpu", "--output-dir", str(tmp_path / "gpu")]) == 0
    report = json.loads((tmp_path / "gpu" / "report.json").read_text())
    assert report["backend"] == "gpu" and report["cluster"]["kind"] == "LocalCUDACluster"
    _same_outputs(tmp_path / "cpu", tmp_path / "gpu")
