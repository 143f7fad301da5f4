"""``python -m pipeline doctor``: what stands between this machine and a GPU run.

It reports the GPUs NVML sees (name, memory, compute capability), the driver and the
newest CUDA it supports, the GPU libraries (installed distribution, the CUDA major it is
built for, whether it imports), ``CUDA_VISIBLE_DEVICES``, and one exact fix per problem.

Nothing here creates a CUDA context: NVML only queries the driver, installed versions
come from package metadata (``cupy-cuda12x`` -> CUDA 12, read from the distribution name),
and the import check runs in a child process that exits right after.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata

from pipeline.gpu import extras, nvml
from pipeline.gpu.nvml import Nvml

# import name -> what it is for; the first three are what backend gpu needs
LIBS = {"cupy": "GPU arrays", "cudf": "GPU dataframes", "dask_cuda": "LocalCUDACluster",
        "rmm": "GPU memory pools", "dask_cudf": "Dask on cuDF"}
REQUIRED = extras.ARRAY_LIBS  # what backend gpu needs; cuDF only for table stages
RAPIDS = ("cudf", "rmm", "dask_cuda", "dask_cudf")  # released together, same YY.MM
# Oldest Linux driver for each CUDA major (CUDA's minor-version compatibility).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}
# RAPIDS 24.x+ (cuDF, RMM) need Volta or newer.
MIN_COMPUTE = (7, 0)
IMPORT_TIMEOUT_S = 120
HIDDEN = {"", "-1", "none", "nodevfiles", "void"}
CONTAINER_HINT = ("in a container, start it with `docker run --gpus all` "
                  "(NVIDIA Container Toolkit)")


@dataclass
class Lib:
    module: str
    dists: list[tuple[str, str]] = field(default_factory=list)  # (name, version)
    import_checked: bool = False
    import_error: str | None = None

    @property
    def installed(self) -> bool:
        return bool(self.dists)

    @property
    def cuda_major(self) -> int | None:
        majors = {m for m in (cuda_major_of(d) for d, _ in self.dists) if m}
        return majors.pop() if len(majors) == 1 else None


@dataclass
class Facts:
    nvml: Nvml
    libs: dict[str, Lib]
    visible: str | None  # CUDA_VISIBLE_DEVICES, None when unset
    cuda_wheels: dict[str, str] = field(default_factory=dict)  # nvidia-*-cuXX runtime wheels
    pynvml: str | None = None  # the distribution providing pynvml, with its version
    # dask-cuda's CUDA bindings (cuda-core and cuda-bindings, from dask-cuda[cuXX])
    cuda_bindings: bool = True

    @property
    def driver_cuda(self) -> int | None:
        return self.nvml.cuda[0] if self.nvml.cuda else None


@dataclass
class Problem:
    what: str
    fix: str


def cuda_major_of(dist: str) -> int | None:
    """``cupy-cuda12x`` -> 12, ``cudf-cu12`` -> 12, ``dask-cuda`` -> None."""
    m = re.search(r"-cu(?:da)?(\d+)x?$", dist.lower())
    return int(m.group(1)) if m else None


def gather(*, env=None, import_check: bool = True) -> Facts:
    """Collect the facts: NVML, the installed GPU libraries, the environment."""
    env = os.environ if env is None else env
    owners = metadata.packages_distributions()
    libs = {}
    for module in LIBS:
        dists = sorted({(d, metadata.version(d)) for d in owners.get(module, [])})
        libs[module] = Lib(module, dists)
    if import_check:
        errors = probe_imports([m for m, lib in libs.items() if lib.installed])
        for module, error in errors.items():
            libs[module].import_checked, libs[module].import_error = True, error
    wheels = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if re.fullmatch(r"nvidia-cuda-(runtime|nvrtc)-cu\d+", name.lower()):
            wheels[name] = dist.version
    pynvml = ", ".join(f"{d} {metadata.version(d)}" for d in owners.get("pynvml", [])) or None
    bindings = all(_find(m) for m in ("cuda.core", "cuda.bindings"))
    return Facts(nvml.probe(), libs, env.get("CUDA_VISIBLE_DEVICES"), wheels, pynvml,
                 bindings)


def _find(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the parent package is missing
        return False


def probe_imports(modules: list[str]) -> dict[str, str | None]:
    """Import each module in a child process: ``{module: None | "Error: message"}``."""
    if not modules:
        return {}
    code = ("import json, sys\nout = {}\nfor m in sys.argv[1:]:\n    try:\n"
            "        __import__(m)\n        out[m] = None\n    except Exception as e:\n"
            "        out[m] = f'{type(e).__name__}: {e}'.strip().splitlines()[-1]\n"
            "print('RESULT:' + json.dumps(out))")
    try:
        proc = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True,
                              text=True, timeout=IMPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {m: f"importing took over {IMPORT_TIMEOUT_S} s" for m in modules}
    if "RESULT:" not in proc.stdout:  # the child crashed (e.g. a segfault in a library)
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {m: f"the import check crashed: {last}" for m in modules}
    return json.loads(proc.stdout.rsplit("RESULT:", 1)[1])


def pip_install(pins: list[str]) -> str:
    return "python -m pip install " + " ".join(f'"{p}"' for p in pins)


def diagnose(f: Facts) -> list[Problem]:
    """Every problem found, each with the exact command or step that fixes it."""
    problems: list[Problem] = []
    nv = f.nvml
    libs = f.libs
    wants_gpu = any(lib.installed for lib in libs.values())
    if nv.error:
        if nv.error == "NoPynvml":
            problems.append(Problem("nvidia-ml-py (pynvml) is not installed, so GPUs cannot "
                                    "be detected", 'python -m pip install "nvidia-ml-py>=12"'))
        elif nv.error == "DriverNotLoaded":
            problems.append(Problem("the NVIDIA driver is installed but not loaded",
                                    "sudo modprobe nvidia (or reboot); `nvidia-smi` must "
                                    "then list the GPUs"))
        elif nv.error == "LibRmVersionMismatch":
            problems.append(Problem("the NVIDIA kernel module and driver library versions "
                                    "differ (driver upgraded without a reboot)",
                                    "reboot, then check `nvidia-smi`"))
        elif nv.error == "NoPermission":
            problems.append(Problem("no permission to open the GPU devices (/dev/nvidia*)",
                                    "add your user to the group owning /dev/nvidia* "
                                    "(e.g. sudo usermod -aG video $USER, then log in again)"))
        elif wants_gpu:  # LibraryNotFound etc.: only a problem when a GPU is wanted here
            problems.append(Problem(f"GPU libraries are installed but no NVIDIA driver was "
                                    f"found ({nv.detail})",
                                    f"install the NVIDIA driver so that `nvidia-smi` lists "
                                    f"the GPU; {CONTAINER_HINT}"))
        return problems + _library_problems(f)
    if not nv.gpus:
        problems.append(Problem("the NVIDIA driver is loaded but reports no GPUs",
                                 f"check `nvidia-smi`; {CONTAINER_HINT}"))
        return problems + _library_problems(f)
    problems += _visible_problems(f)
    problems += _library_problems(f)
    needs_volta = [lib for lib in ("cudf", "rmm") if libs[lib].installed]
    for gpu in nv.gpus:
        if gpu.compute and gpu.compute < MIN_COMPUTE and needs_volta:
            problems.append(Problem(
                f"GPU {gpu.index} ({gpu.name}) has compute capability "
                f"{gpu.compute[0]}.{gpu.compute[1]}; cuDF / RMM need "
                f"{MIN_COMPUTE[0]}.{MIN_COMPUTE[1]} or newer (Volta+)",
                "run with --backend cpu on this machine, or use a Volta-or-newer GPU"))
    return problems


def _library_problems(f: Facts) -> list[Problem]:
    problems = []
    libs, nv = f.libs, f.nvml
    arrays = extras.name(f.driver_cuda, tables=False)
    if nv.gpus:
        missing = [m for m in REQUIRED if not libs[m].installed]
        if missing:
            problems.append(Problem(
                "GPUs are present but these libraries are missing: " + ", ".join(missing),
                pip_install(extras.requirements(arrays)) + "   (or, in this repository: "
                f'python -m pip install -e ".[{arrays}]"; ".[{extras.name(f.driver_cuda, True)}]"'
                " adds cuDF for table stages)"))
    if libs["dask_cuda"].installed and not f.cuda_bindings:
        pin = next((p for p in extras.requirements(arrays) if p.startswith("dask-cuda")),
                   f"dask-cuda[cu{extras.cuda_line(f.driver_cuda)}]")
        problems.append(Problem(
            "dask-cuda is installed without its CUDA bindings (cuda-core, cuda-bindings): "
            "`import dask_cuda` fails",
            pip_install([pin]) + "   (the [cuXX] extra brings them; "
            f'in this repository: python -m pip install -e ".[{arrays}]")'))
    for lib in libs.values():
        if len(lib.dists) > 1:
            names = " ".join(d for d, _ in lib.dists)
            keep = _best_dist(lib, nv)
            problems.append(Problem(
                f"{lib.module} is installed {len(lib.dists)} times ({names}); the copies "
                "overwrite each other's files",
                f"python -m pip uninstall -y {names} && python -m pip install {keep}"))
    driver_major = nv.cuda[0] if nv.cuda else None
    too_new = set()
    for lib in libs.values():
        major = lib.cuda_major
        if driver_major is None or major is None or major <= driver_major:
            continue
        too_new.add(lib.module)
        dist = lib.dists[0][0]
        older = re.sub(r"(\d+)(x?)$", lambda m: f"{driver_major}{m.group(2)}", dist)
        problems.append(Problem(
            f"{dist} is built for CUDA {major}, but driver {nv.driver} supports CUDA up to "
            f"{nv.cuda[0]}.{nv.cuda[1]}",
            f"upgrade the NVIDIA driver to {MIN_DRIVER.get(major, 'a newer release')} or "
            f"newer (CUDA {major}); or install the CUDA {driver_major} build: python -m pip "
            f"uninstall -y {dist} && python -m pip install {older}"))
    # (a library too new for the driver already has its fix above)
    majors = {lib.cuda_major: lib for lib in libs.values()
              if lib.cuda_major and lib.module not in too_new}
    if len(majors) > 1:
        # keep the newest CUDA major the driver supports
        fits = [m for m in majors if driver_major is None or m <= driver_major]
        want = max(fits) if fits else min(majors)
        odd = [lib for m, lib in majors.items() if m != want]
        listing = ", ".join(f"{lib.dists[0][0]} (CUDA {lib.cuda_major})"
                            for lib in majors.values())
        fixes = " && ".join(
            f"python -m pip uninstall -y {lib.dists[0][0]} && python -m pip install "
            + re.sub(r"(\d+)(x?)$", lambda m: f"{want}{m.group(2)}", lib.dists[0][0])
            for lib in odd)
        problems.append(Problem(f"the GPU libraries are built for different CUDA majors: "
                                f"{listing}", fixes))
    rapids = {m: _release(libs[m]) for m in RAPIDS if libs[m].installed}
    if len(set(rapids.values())) > 1:
        listing = ", ".join(f"{libs[m].dists[0][0]} {libs[m].dists[0][1]}" for m in rapids)
        pins = extras.requirements(extras.name(f.driver_cuda, tables=True))
        problems.append(Problem(f"RAPIDS libraries from different releases: {listing}",
                                pip_install([p for p in pins if not p.startswith("cupy")])))
    for lib in libs.values():
        if lib.module == "dask_cuda" and not f.cuda_bindings:
            continue  # its fix is above
        if lib.installed and lib.import_error:
            dist, version = lib.dists[0]
            problems.append(Problem(
                f"{dist} {version} is installed but `import {lib.module}` fails: "
                f"{lib.import_error}",
                f"python -m pip install --force-reinstall \"{dist}=={version}\"; if it still "
                f"fails, `python -c 'import {lib.module}'` shows the whole error"))
    return problems


def _best_dist(lib: Lib, nv: Nvml) -> str:
    """Of several builds of one library, the newest CUDA major the driver supports."""
    usable = [(cuda_major_of(d) or 0, d) for d, _ in lib.dists
              if not nv.cuda or (cuda_major_of(d) or 0) <= nv.cuda[0]]
    return max(usable)[1] if usable else lib.dists[0][0]


def _release(lib: Lib) -> str:
    return ".".join(lib.dists[0][1].split(".")[:2])  # 26.10.01 -> 26.10


def _visible_problems(f: Facts) -> list[Problem]:
    if f.visible is None:
        return []
    gpus = f.nvml.gpus
    every = ",".join(str(g.index) for g in gpus)
    if f.visible.strip().lower() in HIDDEN:
        return [Problem(f"CUDA_VISIBLE_DEVICES={f.visible!r} hides every GPU from CUDA",
                        f"unset CUDA_VISIBLE_DEVICES   (or export CUDA_VISIBLE_DEVICES={every})")]
    bad = [e for e in nvml.visible_entries(f.visible) if nvml.match(e, gpus) is None]
    if not bad:
        return []
    return [Problem(f"CUDA_VISIBLE_DEVICES={f.visible} names "
                    + ", ".join(repr(b) for b in bad)
                    + f", which is not one of the {len(gpus)} GPU(s) NVML sees "
                    f"(0-{len(gpus) - 1}); CUDA ignores it and every entry after it",
                    f"export CUDA_VISIBLE_DEVICES={every}   (or unset CUDA_VISIBLE_DEVICES)")]


def render(f: Facts, problems: list[Problem]) -> str:
    """The report printed by ``python -m pipeline doctor``."""
    nv = f.nvml
    lines = ["NVIDIA driver"]
    if nv.error:
        lines.append(f"  not available: {nv.detail or nv.error}")
    else:
        lines.append(f"  driver {nv.driver}, supports CUDA up to {nv.cuda[0]}.{nv.cuda[1]}")
    lines.append(f"  pynvml: {f.pynvml or 'not installed'}")
    lines.append("GPUs (NVML)")
    if not nv.gpus:
        lines.append("  none")
    for g in nv.gpus:
        used = f", {_gib(g.memory_used)} used" if g.memory_used is not None else ""
        compute = f", compute {g.compute[0]}.{g.compute[1]}" if g.compute else ""
        lines.append(f"  {g.index}  {g.name}  {_gib(g.memory_total)}{used}{compute}  {g.uuid}")
    lines.append(f"CUDA_VISIBLE_DEVICES: {'not set' if f.visible is None else repr(f.visible)}")
    lines.append("GPU libraries")
    width = max(len(m) for m in f.libs)
    for module, lib in f.libs.items():
        if not lib.installed:
            state = "not installed"
        else:
            state = ", ".join(f"{d} {v}" for d, v in lib.dists)
            major = lib.cuda_major
            state += f"  (CUDA {major})" if major else ""
            if lib.import_error:
                state += f"  import FAILS: {lib.import_error}"
            elif lib.import_checked:
                state += "  imports"
        lines.append(f"  {module:<{width}}  {state}   [{LIBS[module]}]")
    if f.cuda_wheels:
        lines.append("CUDA runtime wheels: " + ", ".join(f"{k} {v}"
                                                           for k, v in f.cuda_wheels.items()))
    if f.driver_cuda:
        lines.append(f"extras for this driver (CUDA {f.driver_cuda}): "
                     f".[{extras.name(f.driver_cuda, False)}] for arrays, "
                     f".[{extras.name(f.driver_cuda, True)}] for arrays and tables")
    lines.append("")
    if problems:
        lines.append(f"problems ({len(problems)}):")
        for i, p in enumerate(problems, 1):
            lines += [f"  {i}. {p.what}", f"     fix: {p.fix}"]
        lines.append("")
    lines.append(verdict(f, problems))
    return "\n".join(lines)


def verdict(f: Facts, problems: list[Problem]) -> str:
    """One line: which backend runs will use, and whether the GPU path is ready."""
    gpus = f.nvml.gpus
    libs_ok = all(f.libs[m].installed for m in REQUIRED)
    if not gpus:
        line = ("no GPU found: runs will use the CPU backend (backend: auto picks cpu; "
                "backend: gpu stops with exit 2)")
        if f.nvml.error == "LibraryNotFound" and not problems:
            line += (f".\nIf this machine has an NVIDIA GPU: install the NVIDIA driver so "
                     f"that `nvidia-smi` lists it; {CONTAINER_HINT}.")
        return line
    if not libs_ok:
        return (f"{len(gpus)} GPU(s), but runs will use the CPU backend until the GPU "
                "libraries are installed (see the fixes above)")
    if problems:
        return (f"{len(gpus)} GPU(s): backend auto picks the GPU, but the problems above "
                "will make runs fail or misbehave; fix them, or use --backend cpu")
    line = (f"ready: backend auto runs on {len(gpus)} GPU(s) with LocalCUDACluster "
            "(one worker per GPU)")
    missing = [m for m in extras.TABLE_LIBS if not f.libs[m].installed]
    if missing:
        line += (f"; workflows with table stages run on the CPU until {', '.join(missing)} "
                 f"{'is' if len(missing) == 1 else 'are'} installed: python -m pip install -e "
                 f'".[{extras.name(f.driver_cuda, tables=True)}]"')
    return line


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
