"""Every example workflow validates at its real size and runs at a small one."""

import json

import pytest

from pipeline import backends, plan, runner, spec
from pipeline.cli import main
from tests.conftest import NO_CUDF, REPO, requires_gpu, requires_standin

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


@pytest.fixture(scope="session")
def cpu_run(cluster, tmp_path_factory):
    """``cpu_run(path)``: the run folder of the workflow at ``path`` run small on the CPU
    backend, made once per test process: the GPU comparisons below reuse it."""
    folders = {}

    def run(path):
        if path.stem not in folders:
            out = tmp_path_factory.mktemp(f"cpu-{path.stem}") / "run"
            small = [a for item in SMALL[path.stem] for a in ("--set", item)]
            assert main(["run", str(path), "--backend", "cpu", "--address",
                         cluster.scheduler_address, "--quiet", "--output-dir", str(out),
                         *small]) == 0
            folders[path.stem] = out
        return folders[path.stem]

    return run


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_runs_small_on_cpu(path, cpu_run):
    report = json.loads((cpu_run(path) / "report.json").read_text())
    assert report["outputs"] and all(o["bytes"] > 0 for o in report["outputs"])
    # every task found its stage (fused by default), none is left to "(other)"
    assert report["accounting"]["fused"] and report["totals"]["other"]["tasks"] == 0


# Tolerances for GPU vs CPU: float32 FFT / reduction order differs between cuFFT and
# pocketfft and between CuPy's and NumPy's reductions.
GPU_RTOL, GPU_ATOL = 1e-4, 1e-6


def _load_output(path):
    import dask.array as da
    import numpy as np
    import pandas as pd

    if path.suffix == ".npy":
        return np.load(path)
    if path.suffix == ".json":
        doc = json.loads(path.read_text())
        if isinstance(doc, dict):  # a scalar result: {"value": x}
            doc = doc["value"]
        return np.asarray(doc, dtype=object)
    if path.suffix == ".zarr":
        return da.from_zarr(str(path)).compute()
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    return None  # html, png: presence only


def _same_outputs(cpu_dir, gpu_dir, values: bool):
    """Same files; with ``values`` also the same numbers (else shapes / columns only)."""
    import numpy as np
    import pandas as pd

    for cpu_file in sorted(cpu_dir.iterdir()):
        gpu_file = gpu_dir / cpu_file.name
        assert gpu_file.exists(), gpu_file
        if cpu_file.name == "report.json":
            continue
        a, b = _load_output(cpu_file), _load_output(gpu_file)
        if isinstance(a, pd.DataFrame):
            assert list(a.columns) == list(b.columns)
            if values:
                key = list(a.columns)
                pd.testing.assert_frame_equal(
                    a.sort_values(key).reset_index(drop=True),
                    b.sort_values(key).reset_index(drop=True), check_dtype=False,
                    rtol=GPU_RTOL)
        elif a is not None:
            assert np.shape(a) == np.shape(b)
            if values:
                np.testing.assert_allclose(np.asarray(b, float), np.asarray(a, float),
                                           rtol=GPU_RTOL, atol=GPU_ATOL)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_gpu_run_matches_cpu(path, cpu_run, tmp_path):
    skip_tables_without_cudf(path)
    small = [a for item in SMALL[path.stem] for a in ("--set", item)]
    assert main(["run", str(path), "--quiet", "--no-dashboard", *small, "--backend", "gpu",
                 "--output-dir", str(tmp_path / "gpu")]) == 0
    report = json.loads((tmp_path / "gpu" / "report.json").read_text())
    assert report["backend"] == "gpu" and report["cluster"]["kind"] == "LocalCUDACluster"
    # CuPy's random generator is not NumPy's: where a workflow generates its input, the
    # numbers differ and only the outputs' structure can match (the op tests compare every
    # op's values on GPU against NumPy on the same input).
    generated = {"random", "random_table"} & {s.op for s in spec.load(path).stages}
    _same_outputs(cpu_run(path), tmp_path / "gpu", values=not generated)


@pytest.mark.standin
@requires_standin
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_standin_run_matches_cpu(path, address, cpu_run, tmp_path):
    """The GPU backend on the CuPy stand-in, in the worker processes of a real cluster:
    every GPU code path of the workflow runs, with CuPy's strictness. The stand-in draws
    NumPy's random numbers, so the values must equal the CPU run's, generated or read."""
    skip_tables_without_cudf(path)
    wf = spec.load(path, SMALL[path.stem], output_dir=tmp_path / "gpu")
    report = run_on(backends.GPU, wf, address)
    assert report["backend"] == "gpu"
    assert report["totals"]["d2h_bytes"] > 0  # the sinks' data crossed to the host
    _same_outputs(cpu_run(path), tmp_path / "gpu", values=True)


def skip_tables_without_cudf(path) -> None:
    if NO_CUDF and plan.build(spec.load(path)).table_stages:
        pytest.skip("table stages on the GPU need cuDF, which is not installed (the CuPy "
                    "stand-in covers arrays only)")


def run_on(backend, wf, address) -> dict:
    """Run ``wf`` on the cluster at ``address`` with ``backend`` as given (no detection:
    the stand-in is not a GPU the workers could find)."""
    from distributed import Client

    from pipeline.cluster import Session

    with Client(address) as client:
        n = len(client.scheduler_info()["workers"])
        return runner.run(plan.build(wf), backend, Session(client, "existing", address,
                                                           None, n, backend, "forced"))
