# bff gateway image: build the wheel and its dependencies in one stage, run slim and non-root.
#   docker build -t bff .
#   docker run --rm -p 8080:8080 -e BFF_STORE_URL=postgresql://... -e REDIS_URL=redis://... bff
# The configuration is /etc/bff/gateway.yaml (deploy/gateway.yaml; mount your own over it).
# See docs/deployment.md.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/bff
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bff ./bff
COPY schema ./schema
COPY clients ./clients
COPY services ./services
RUN /opt/bff/bin/pip install --no-compile . \
    && /opt/bff/bin/python -m compileall -q /opt/bff/lib

FROM python:3.11-slim
ENV PATH=/opt/bff/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BFF_PORT=8080
RUN groupadd --system --gid 10001 bff \
    && useradd --system --uid 10001 --gid bff --home-dir /var/lib/bff --create-home bff
COPY --from=build /opt/bff /opt/bff
COPY deploy/gateway.yaml /etc/bff/gateway.yaml
USER 10001:10001
WORKDIR /var/lib/bff
EXPOSE 8080
# Liveness only: readiness (/readyz) is for the load balancer, which must stop sending traffic
# without the container being restarted.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BFF_PORT', '8080'), timeout=2)"]
# SIGTERM drains (listen.drain_timeout); SIGHUP reloads the configuration file.
STOPSIGNAL SIGTERM
ENTRYPOINT ["bff", "serve"]
CMD ["--config", "/etc/bff/gateway.yaml"]
