# pointsman: the HTTP front and the runners, one image (`pointsman serve`, `pointsman runner serve`).
# docker build -t pointsman . ; docker run -p 8080:8080 -e POINTSMAN_DATABASE_URL=... pointsman
# Stage 1 builds the virtualenv (compilers only here, for any package without a wheel);
# stage 2 is the slim runtime with that venv, a non-root user and no build tools.
ARG PYTHON=python:3.11-slim-bookworm

FROM ${PYTHON} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A private package index, or the CA bundle of a proxy that inspects TLS (build stage only).
ARG PIP_INDEX_URL
ARG PIP_CERT
RUN python -m venv /opt/pointsman
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pointsman ./pointsman
RUN /opt/pointsman/bin/pip install ".[s3]" \
 && /opt/pointsman/bin/pointsman --version

FROM ${PYTHON}
LABEL org.opencontainers.image.title="pointsman" \
      org.opencontainers.image.description="Run trained ML models in production" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed uid, so that runAsNonRoot and volume ownership can be stated in the manifests.
RUN groupadd --system --gid 10001 pointsman \
 && useradd --system --uid 10001 --gid pointsman --home-dir /srv/pointsman pointsman \
 && mkdir -p /srv/pointsman/artifacts /srv/pointsman/spool \
 && printf '%s\n' '# Settings come from the environment (POINTSMAN_*): docs/settings.md, docs/deploy.md.' \
      > /srv/pointsman/pointsman.toml \
 && chown -R pointsman:pointsman /srv/pointsman
COPY --from=build /opt/pointsman /opt/pointsman
COPY deploy/healthcheck.py /opt/pointsman/healthcheck.py
ENV PATH=/opt/pointsman/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    POINTSMAN_PROJECT=/srv/pointsman \
    POINTSMAN_HOST=0.0.0.0 \
    POINTSMAN_PORT=8080
USER 10001:10001
WORKDIR /srv/pointsman
EXPOSE 8080 7070
# /healthz of the front; a runner (POINTSMAN_HEALTHCHECK=tcp:7070) is healthy once it listens.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "/opt/pointsman/healthcheck.py"]
ENTRYPOINT ["pointsman"]
CMD ["serve"]
