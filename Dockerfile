# faro's container image: `faro run --config /etc/faro/config.yaml` as a non-root user.
#
#   docker build -t faro:latest .
#
# deploy/operator/ runs it (see docs/operator.md). The build stage installs faro and its
# runtime dependencies (no test or dev extras) into a virtual environment; the final stage
# copies only that environment, so no source, wheel or pip cache is left in the image.

ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.cfg README.md LICENSE ./
COPY faro ./faro
RUN python -m venv /opt/faro \
 && /opt/faro/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
# A numeric user, so that Kubernetes' runAsNonRoot can verify it is not root.
RUN groupadd --system --gid 10001 faro \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin faro
COPY --from=build /opt/faro /opt/faro
ENV PATH=/opt/faro/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["faro"]
CMD ["run", "--config", "/etc/faro/config.yaml"]
