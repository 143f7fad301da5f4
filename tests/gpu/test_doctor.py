"""`python -m pipeline doctor`: this machine as it is, then every problem it knows about,
fed as fake NVML / library states, each with its message and exact fix."""

import json
import subprocess
import sys
import textwrap

import pytest

from pipeline.gpu import doctor
from pipeline.cli import main
from pipeline.gpu.doctor import Facts, Lib
from pipeline.gpu.nvml import Gpu, Nvml
from tests.conftest import REPO, gpu_present


def test_doctor_on_this_machine(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for module in doctor.LIBS:
        assert f"  {module} " in out
    assert "CUDA_VISIBLE_DEVICES:" in out and "GPUs (NVML)" in out
    if gpu_present():
        assert "supports CUDA up to" in out
        return
    assert "runs will use the CPU backend" in out
    facts = doctor.gather(import_check=False)
    if not any(lib.installed for lib in facts.libs.values()):
        assert "problems" not in out  # a CPU machine is not a broken one
    else:  # GPU libraries without a GPU (CI installs CuPy to check names against it)
        assert [p.what for p in doctor.diagnose(facts)][0].startswith(
            "GPU libraries are installed but no NVIDIA driver was found")


def test_real_subprocess_exit_0():
    proc = subprocess.run([sys.executable, "-m", "pipeline", "doctor", "--no-import"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "GPU libraries" in proc.stdout


def test_import_check_runs_in_a_child_process(tmp_path):
    """Installed-looking stand-ins: one imports, one fails like a missing CUDA runtime.
    The doctor's own process imports neither (so it creates no CUDA context)."""
    def fake_dist(module, dist, version, body=""):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(body)
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\n"
                                       f"Version: {version}\n")
        (info / "top_level.txt").write_text(module + "\n")

    fake_dist("cupy", "cupy-cuda12x", "13.3.0")
    fake_dist("cudf", "cudf-cu12", "26.10.0",
              "raise ImportError('libcudart.so.12: cannot open shared object file')")
    probe = textwrap.dedent("""
        import json, sys
        from pipeline.gpu import doctor
        f = doctor.gather()
        print(json.dumps({"loaded": [m for m in ("cupy", "cudf") if m in sys.modules],
                          "cupy": [f.libs["cupy"].cuda_major, f.libs["cupy"].import_checked,
                                   f.libs["cupy"].import_error],
                          "cudf": f.libs["cudf"].import_error,
                          "text": doctor.render(f, doctor.diagnose(f))}))
    """)
    # -S: no site-packages, so a CuPy installed on this machine is not seen beside the
    # stand-in; the pipeline itself comes from the checkout
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": ""},
                         timeout=60).stdout
    got = json.loads(out)
    assert got["loaded"] == []
    assert got["cupy"] == [12, True, None]
    assert got["cudf"] == "ImportError: libcudart.so.12: cannot open shared object file"
    assert "cupy-cuda12x 13.3.0  (CUDA 12)  imports" in got["text"]
    assert 'python -m pip install --force-reinstall "cudf-cu12==26.10.0"' in got["text"]


# --- fake states -------------------------------------------------------------------------

H100 = Gpu(0, "NVIDIA H100 80GB HBM3", 80 << 30, 1 << 30, "GPU-1234abcd", (9, 0))


def facts(*, gpus=(H100,), cuda=(12, 4), error=None, libs=None, visible=None, failing=()):
    nvml = Nvml(error=error, detail=error or "", driver=None if error else "550.54.15",
                cuda=None if error else cuda, gpus=[] if error else list(gpus))
    dists = {"cupy": [("cupy-cuda12x", "13.3.0")], "cudf": [("cudf-cu12", "26.10.0")],
             "dask_cuda": [("dask-cuda", "26.10.0")], "rmm": [("rmm-cu12", "26.10.0")],
             "dask_cudf": [("dask-cudf-cu12", "26.10.0")]}
    if libs is not None:
        dists = {m: [] for m in dists} | libs
    return Facts(nvml, {m: Lib(m, d, import_checked=bool(d),
                                import_error="ImportError: boom" if m in failing else None)
                        for m, d in dists.items()}, visible)


def diagnose(f):
    return [(p.what, p.fix) for p in doctor.diagnose(f)]


def one(f):
    found = diagnose(f)
    assert len(found) == 1, found
    return found[0]


def test_everything_right_is_ready():
    f = facts()
    assert diagnose(f) == []
    assert doctor.verdict(f, []).startswith("ready: backend auto runs on 1 GPU(s)")
    text = doctor.render(f, [])
    assert "driver 550.54.15, supports CUDA up to 12.4" in text
    assert "NVIDIA H100 80GB HBM3  80.0 GiB, 1.0 GiB used, compute 9.0" in text


def test_no_gpu_and_no_libraries_is_fine():
    f = facts(error="LibraryNotFound", libs={})
    assert diagnose(f) == []
    assert "runs will use the CPU backend" in doctor.verdict(f, [])


def test_libraries_without_a_driver():
    what, fix = one(facts(error="LibraryNotFound"))
    assert "no NVIDIA driver was found" in what
    assert "nvidia-smi" in fix and "--gpus all" in fix


@pytest.mark.parametrize("error, fix_part", [
    ("DriverNotLoaded", "sudo modprobe nvidia"),
    ("LibRmVersionMismatch", "reboot"),
    ("NoPermission", "usermod -aG video"),
    ("NoPynvml", 'pip install "nvidia-ml-py>=12"'),
])
def test_nvml_errors(error, fix_part):
    assert fix_part in one(facts(error=error, libs={}))[1]


def test_driver_without_gpus():
    what, fix = one(facts(gpus=()))
    assert what == "the NVIDIA driver is loaded but reports no GPUs" and "--gpus all" in fix


def test_gpus_without_libraries_get_the_extra_for_their_driver():
    f = facts(libs={"rmm": [("rmm-cu12", "26.10.0")]})
    what, fix = one(f)
    assert what.endswith("missing: cupy, dask_cuda")  # cuDF is only for table stages
    assert fix.startswith('python -m pip install "dask-cuda[cu12]==26.10.*" "cupy-cuda12x>=13.3"')
    assert 'pip install -e ".[gpu-cu12]"' in fix and '".[gpu-tables-cu12]" adds cuDF' in fix
    assert "CPU backend until the GPU libraries are installed" in doctor.verdict(f, [])
    f13 = facts(cuda=(13, 0), libs={})
    assert 'pip install -e ".[gpu-cu13]"' in one(f13)[1]
    assert "extras for this driver (CUDA 13): .[gpu-cu13] for arrays, .[gpu-tables-cu13] " \
        "for arrays and tables" in doctor.render(f13, [])


def test_arrays_are_ready_without_cudf_and_the_verdict_says_what_tables_need():
    f = facts(cuda=(13, 0), libs={"cupy": [("cupy-cuda13x", "14.2.0")],
                                  "dask_cuda": [("dask-cuda", "26.10.0")]})
    assert diagnose(f) == []
    assert doctor.verdict(f, []) == (
        "ready: backend auto runs on 1 GPU(s) with LocalCUDACluster (one worker per GPU); "
        "workflows with table stages run on the CPU until cudf, dask_cudf are installed: "
        'python -m pip install -e ".[gpu-tables-cu13]"')


def test_dask_cuda_without_its_cuda_bindings():
    f = facts(cuda=(13, 0), failing=("dask_cuda",))
    f.cuda_bindings = False
    what, fix = one(f)  # one problem, not also the generic import failure
    assert what.startswith("dask-cuda is installed without its CUDA bindings")
    assert fix.startswith('python -m pip install "dask-cuda[cu13]==26.10.*"')


def test_library_newer_than_the_driver():
    what, fix = one(facts(cuda=(11, 4), libs={"cupy": [("cupy-cuda12x", "13.3.0")],
                                              "cudf": [("cudf-cu11", "24.4.0")],
                                              "dask_cuda": [("dask-cuda", "24.4.0")]}))
    assert what == "cupy-cuda12x is built for CUDA 12, but driver 550.54.15 supports CUDA " \
                   "up to 11.4"
    assert "upgrade the NVIDIA driver to 525.60.13 or newer (CUDA 12)" in fix
    assert fix.endswith("python -m pip uninstall -y cupy-cuda12x && "
                        "python -m pip install cupy-cuda11x")


def test_libraries_for_different_cuda_majors():
    what, fix = one(facts(libs={"cupy": [("cupy-cuda11x", "13.3.0")],
                                "cudf": [("cudf-cu12", "26.10.0")],
                                "dask_cuda": [("dask-cuda", "26.10.0")]}))
    assert "cupy-cuda11x (CUDA 11), cudf-cu12 (CUDA 12)" in what
    assert fix == "python -m pip uninstall -y cupy-cuda11x && python -m pip install cupy-cuda12x"


def test_a_library_installed_twice():
    f = facts()
    f.libs["cupy"].dists = [("cupy-cuda11x", "13.3.0"), ("cupy-cuda12x", "13.3.0")]
    what, fix = one(f)
    assert what.startswith("cupy is installed 2 times")
    assert fix == ("python -m pip uninstall -y cupy-cuda11x cupy-cuda12x && "
                   "python -m pip install cupy-cuda12x")


def test_rapids_releases_mixed():
    f = facts()
    f.libs["rmm"].dists = [("rmm-cu12", "25.02.0")]
    what, fix = one(f)
    assert "different releases" in what and "rmm-cu12 25.02.0" in what
    assert fix.startswith('python -m pip install "dask-cuda[cu12]==26.10.*" '
                          '"cudf-cu12==26.10.*"')


def test_import_failure():
    what, fix = one(facts(failing=("cudf",)))
    assert what == "cudf-cu12 26.10.0 is installed but `import cudf` fails: ImportError: boom"
    assert fix.startswith('python -m pip install --force-reinstall "cudf-cu12==26.10.0"')


@pytest.mark.parametrize("visible, what_part, fix", [
    ("", "hides every GPU", "unset CUDA_VISIBLE_DEVICES"),
    ("-1", "hides every GPU", "unset CUDA_VISIBLE_DEVICES"),
    ("0,3", "names '3', which is not one of the 2 GPU(s)", "export CUDA_VISIBLE_DEVICES=0,1"),
    ("GPU-ffff", "names 'GPU-ffff'", "export CUDA_VISIBLE_DEVICES=0,1"),
])
def test_cuda_visible_devices(visible, what_part, fix):
    second = Gpu(1, "NVIDIA H100 80GB HBM3", 80 << 30, 0, "GPU-5678", (9, 0))
    what, got_fix = one(facts(gpus=(H100, second), visible=visible))
    assert what_part in what and got_fix.startswith(fix)


@pytest.mark.parametrize("visible", ["1", "GPU-1234", "0, 1"])
def test_cuda_visible_devices_fine(visible):
    second = Gpu(1, "NVIDIA H100 80GB HBM3", 80 << 30, 0, "GPU-5678", (9, 0))
    assert diagnose(facts(gpus=(H100, second), visible=visible)) == []


def test_old_gpu_for_rapids():
    what, fix = one(facts(gpus=(Gpu(0, "Tesla P100", 16 << 30, 0, "GPU-1", (6, 0)),)))
    assert "compute capability 6.0" in what and fix.startswith("run with --backend cpu")


def test_problems_are_numbered_with_their_fix():
    f = facts(failing=("cudf",), visible="")
    text = doctor.render(f, doctor.diagnose(f))
    assert "problems (2):\n  1. CUDA_VISIBLE_DEVICES=''" in text
    assert "\n     fix: unset CUDA_VISIBLE_DEVICES" in text
    assert "but the problems above will make runs fail" in text
