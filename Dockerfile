# syntax=docker/dockerfile:1
# byoc: one stateless middleware process per container. State lives in BYOC_DATABASE_URL
# (PostgreSQL when more than one replica runs; see deploy/kubernetes/).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BYOC_ENVIRONMENT=production \
    BYOC_HOST=0.0.0.0 \
    BYOC_PORT=8080 \
    BYOC_DATABASE_URL=sqlite:////var/lib/byoc/byoc.db
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/byoc-*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 byoc \
    && useradd --system --uid 10001 --gid byoc --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin byoc \
    && mkdir -p /var/lib/byoc \
    && chown byoc:byoc /var/lib/byoc
WORKDIR /var/lib/byoc
USER 10001:10001
EXPOSE 8080
# Liveness only: /healthz does no I/O. Readiness (/readyz) is for the orchestrator.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BYOC_PORT', '8080') + '/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["byoc", "serve", "--host", "0.0.0.0"]
