# syntax=docker/dockerfile:1.7
# The llmscale operator image; the same image runs the gateway (`llmscale gateway`).
#   docker build -f images/operator.Dockerfile -t llmscale/operator:dev .     (make image)
#
# Base: the official Python image, pinned to a full patch release and Debian release.
# Pin the digest too when you build it for production: resolve it once with
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
# and write FROM python:3.11.14-slim-bookworm@sha256:<digest> in both stages
# (docs/images.md; not resolvable on the offline machines this repository is tested on).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: install llmscale and its dependencies into a self-contained virtualenv --------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/llmscale
WORKDIR /src
# Dependencies first, from the lock (exact versions, every file's hash checked, the build
# backend included), so this layer is reproducible and cached until the lock changes;
# `make lock` regenerates it from pyproject.toml. Every dependency ships manylinux wheels for
# CPython 3.11 on amd64/arm64: no compiler here.
COPY images/requirements.lock ./images/
RUN /opt/llmscale/bin/pip install --no-compile --require-hashes -r images/requirements.lock
# Then llmscale itself, resolving nothing: pyproject.toml needs README.md and LICENSE to build.
COPY pyproject.toml README.md LICENSE ./
COPY operator/ ./operator/
RUN /opt/llmscale/bin/pip install --no-compile --no-deps --no-build-isolation . \
 && /opt/llmscale/bin/pip check \
 && /opt/llmscale/bin/python -m compileall -q /opt/llmscale/lib \
 && /opt/llmscale/bin/llmscale --version

# ---- runtime: the interpreter, the virtualenv, nothing else -----------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="llmscale operator" \
      org.opencontainers.image.description="llmscale operator and gateway (kopf, Python 3.11)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/llmscale /opt/llmscale
# HOME and MPLCONFIGDIR point at /tmp: the chart mounts an emptyDir there and keeps the root
# filesystem read-only. Bytecode is precompiled above, so nothing writes beside the code.
ENV PATH=/opt/llmscale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
# A numeric non-root user (the "nonroot" id of distroless images), so the kubelet can verify
# runAsNonRoot without an /etc/passwd entry.
USER 65532:65532
ENTRYPOINT ["llmscale"]
CMD ["operator"]
