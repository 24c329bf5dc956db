# pyggy server image: `docker build -t pyggy .` or `docker compose up --build`.
#
# Two stages: the builder compiles the optional C walks (core/records/_walks.c; setup.py,
# README "C walks") with gcc and the xxHash headers and fails if they were skipped; the
# runtime stage installs the built wheels with the shared libxxhash only (no compiler).
FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libxxhash-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
# the extension is `optional` in setup.py (a missing compiler skips it): here it must exist
RUN pip wheel --no-cache-dir --wheel-dir /wheels "/src[telemetry,s3]" \
    && pip install --no-cache-dir --no-index --find-links /wheels "pyggy[telemetry,s3]" \
    && python -c "from pyggy.core.records import accel; assert accel.IMPLEMENTATION == 'c'"

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IGGY_SYSTEM_PATH=/app/local_data \
    IGGY_TCP_ADDRESS=0.0.0.0:8090 \
    IGGY_KAFKA_ADDRESS=0.0.0.0:9092

WORKDIR /app
# libxxhash0: the shared library the C walks link against (the headers were build-only)
RUN apt-get update \
    && apt-get install -y --no-install-recommends libxxhash0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "pyggy[telemetry,s3]" \
    && rm -rf /wheels \
    && python -c "from pyggy.core.records import accel; assert accel.IMPLEMENTATION == 'c'" \
    && useradd --system --uid 10001 --home-dir /app pyggy \
    && mkdir -p /app/local_data \
    && chown pyggy /app/local_data

USER pyggy
VOLUME ["/app/local_data"]
# 8090: Iggy binary protocol (TCP), 9092: Kafka protocol, 3000: HTTP; a cluster node also
# listens on its [[cluster.nodes]] tcp_replica port (9190 in deploy/cluster.toml)
EXPOSE 8090 9092 3000 9190
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8090), 2).close()"]
CMD ["pyggy-server"]
