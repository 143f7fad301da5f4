# The pipeline's image, for every service of docker-compose.yml (docs/deploy.md). By
# default on RAPIDS 26.10, CUDA 12, for GPU workers; with BASE_IMAGE=pipeline-cpu-base:local
# and BACKEND=cpu (docker/cpu-base.sh makes that base here, offline) for CPU workers.
# The RAPIDS tag must stay on the RAPIDS line of the gpu extra's pins in pyproject.toml
# (tests/test_compose.py checks it). Plain Dockerfile syntax: the classic builder and
# BuildKit both build it, and no frontend image is pulled.
ARG BASE_IMAGE=rapidsai/base:26.10-cuda12-py3.12
FROM ${BASE_IMAGE}
ARG BACKEND=gpu

# rapidsai/base: user `rapids`, RAPIDS 26.10 (cudf, dask-cudf, dask-cuda, cupy, rmm, dask
# and distributed at the versions RAPIDS pins) installed by conda in /opt/conda. The CPU
# base has the same user and the core dependencies, from wheels, in /opt/venv.
# COPY makes /opt/pipeline owned by the image's user, who builds the project there (a
# WORKDIR would be root's).
COPY --chown=rapids:conda pyproject.toml README.md docker/check_image.py /opt/pipeline/
COPY --chown=rapids:conda pipeline /opt/pipeline/pipeline
WORKDIR /opt/pipeline

# The gpu extra names the same RAPIDS libraries by their pip wheel names (cudf-cu12,
# cupy-cuda12x, ...), which pip does not match with the conda packages already here:
# `pip install ".[gpu]"` would install a second copy of each over conda's. So pip adds
# the project and whatever core dependency the base lacks, and check_image.py proves the
# rest is met by the base image, at the pinned versions.
RUN python -m pip install --no-cache-dir . && python check_image.py "${BACKEND}"

WORKDIR /work
# rapidsai/base's entrypoint activates conda, then runs the command.
CMD ["python", "-m", "pipeline", "--help"]
