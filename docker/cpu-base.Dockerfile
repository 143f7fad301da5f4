# The CPU stand-in for rapidsai/base (docker/cpu-base.sh builds it; the build context is
# the wheels folder that script fills). Like rapidsai/base: user `rapids` in group `conda`,
# the Python libraries preinstalled and `python` on the PATH; unlike it, no GPU libraries.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}

RUN groupadd --gid 1000 conda \
 && useradd --create-home --uid 1001 --gid conda rapids \
 && python3 -m venv /opt/venv
COPY wheels /opt/wheels
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /opt/wheels \
        -r /opt/wheels/requirements.txt \
 && find /opt/wheels -name '*.whl' ! -name 'setuptools-*' -delete \
 && chown -R rapids:conda /opt/venv

# Later `pip install .` (the Dockerfile) finds its build backend in /opt/wheels, and
# every dependency already installed: it never reaches for an index.
ENV PATH=/opt/venv/bin:$PATH PIP_NO_INDEX=1 PIP_FIND_LINKS=/opt/wheels
USER rapids
WORKDIR /home/rapids
