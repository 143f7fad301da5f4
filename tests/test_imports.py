"""`import pipeline` and the CLI module must never import the GPU libraries.

Importable stand-ins for the GPU packages are put on the path, so the check also bites on
machines where the real ones are not installed.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline

PACKAGE = Path(pipeline.__file__).parent
GPU_MODULES = ("cupy", "cudf", "dask_cuda", "rmm", "dask_cudf")


@pytest.fixture
def fake_gpu_path(tmp_path):
    for name in GPU_MODULES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    return str(tmp_path)


def _loaded_after(code: str, fake_path: str) -> set[str]:
    probe = (f"{code}\nimport sys\n"
             f"print('LOADED:' + ','.join(m for m in {GPU_MODULES!r} if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [fake_path, *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env=env).stdout
    loaded = out.rsplit("LOADED:", 1)[1].strip()
    return set(filter(None, loaded.split(",")))


def test_the_stand_ins_are_importable(fake_gpu_path):
    assert _loaded_after("import cupy", fake_gpu_path) == {"cupy"}


def test_import_pipeline_is_gpu_free(fake_gpu_path):
    assert _loaded_after("import pipeline", fake_gpu_path) == set()


def test_cli_import_is_gpu_free(fake_gpu_path):
    assert _loaded_after("import pipeline.cli, pipeline.spec, pipeline.backends",
                         fake_gpu_path) == set()


def test_no_module_imports_gpu_libraries_at_top_level():
    """GPU libraries are imported inside the functions that need them, never at import.

    (``dask.array`` itself imports cupy when it is installed, to register its chunk type;
    that creates no CUDA context, and is Dask's choice, not ours.)
    """
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in GPU_MODULES]
    assert offenders == []


def test_array_runs_do_not_import_the_table_stack():
    """Workers import an op module to run its tasks, and the client loads the whole
    catalogue to plan: neither may drag in pandas, pyarrow and matplotlib for an array
    workflow (~1 s per worker, ~0.4 s on the client). (SciPy is left out: dask.array
    imports it itself.)"""
    probe = ("import sys, pipeline.ops, pipeline.ops.array_io, pipeline.ops.arrays\n"
             "pipeline.ops.catalogue()\n"
             "print('LOADED:' + ','.join(m for m in ('pandas', 'pyarrow', 'matplotlib', "
             "'dask.dataframe') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.rsplit("LOADED:", 1)[1].strip() == ""
