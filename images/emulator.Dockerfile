# syntax=docker/dockerfile:1.7
# The vLLM emulator image for users who test llmscale on kind (no GPU): set
# spec.engine.image of an LLMDeployment to it and the pod answers the OpenAI API and exports
# vLLM's /metrics, with latencies from llmscale's replica performance model.
#   docker build -f images/emulator.Dockerfile -t llmscale/emulator:dev .     (make image)
#
# The operator runs vLLM pods as `vllm serve MODEL --port 8000 ...`; the `vllm` command in this
# image (images/vllm-shim.py) hands that command line to `llmscale emulate --pod-env`, so the
# emulator serves exactly what the operator asked vLLM to serve.
#
# Base pinned as in operator.Dockerfile (pin the digest for production, see docs/images.md).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/llmscale
WORKDIR /src
# The same lock and order as operator.Dockerfile (reproducible, nothing resolved here).
COPY images/requirements.lock ./images/
RUN /opt/llmscale/bin/pip install --no-compile --require-hashes -r images/requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY operator/ ./operator/
# the emulator lives in llmscale-tools (tools/), which needs nothing beyond llmscale itself
COPY tools/ ./tools/
RUN /opt/llmscale/bin/pip install --no-compile --no-deps --no-build-isolation . ./tools \
 && /opt/llmscale/bin/pip check \
 && /opt/llmscale/bin/python -m compileall -q /opt/llmscale/lib \
 && /opt/llmscale/bin/llmscale emulate --help >/dev/null
COPY images/vllm-shim.py /opt/llmscale/bin/vllm
RUN chmod 0755 /opt/llmscale/bin/vllm

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="llmscale vLLM emulator" \
      org.opencontainers.image.description="vLLM-compatible emulator driven by llmscale's replica model" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/llmscale /opt/llmscale
ENV PATH=/opt/llmscale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["vllm"]
CMD ["serve", "meta-llama/Llama-3.1-8B-Instruct", "--port", "8000"]
