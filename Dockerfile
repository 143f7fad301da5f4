# syntax=docker/dockerfile:1
# The pipeline on RAPIDS 26.10, CUDA 12: the image of docker-compose.yml's scheduler, GPU
# workers and runner (docs/deploy.md). The tag must stay on the RAPIDS line of the gpu
# extra's pins in pyproject.toml (tests/test_compose.py checks it).
ARG RAPIDS_IMAGE=rapidsai/base:26.10-cuda12-py3.12
FROM ${RAPIDS_IMAGE}

# rapidsai/base: user `rapids`, RAPIDS 26.10 (cudf, dask-cudf, dask-cuda, cupy, rmm, dask
# and distributed at the versions RAPIDS pins) installed by conda in /opt/conda.
WORKDIR /opt/pipeline
COPY --chown=rapids:conda pyproject.toml README.md ./
COPY --chown=rapids:conda pipeline ./pipeline

# The gpu extra names the same RAPIDS libraries by their pip wheel names (cudf-cu12,
# cupy-cuda12x, ...), which pip does not match with the conda packages already here:
# `pip install ".[gpu]"` would install a second copy of each over conda's. So pip adds
# the project and whatever core dependency conda lacks, and the check below proves the
# gpu extra is met by the base image, at the pinned RAPIDS and Dask versions.
RUN python -m pip install --no-cache-dir . \
 && python - <<'PY'
from importlib import metadata, util

for module in ("dask_cuda", "cudf", "dask_cudf", "cupy", "rmm", "pynvml"):
    assert util.find_spec(module), f"{module} is missing from the base image"
assert metadata.version("dask-cuda").startswith("26.10"), metadata.version("dask-cuda")
assert metadata.version("distributed") == "2026.7.1", metadata.version("distributed")
print("gpu extra met by the base image: dask-cuda", metadata.version("dask-cuda"))
PY

WORKDIR /work
# The base image's entrypoint activates conda, then runs the command.
CMD ["python", "-m", "pipeline", "--help"]
