# pyggy server image: `docker build -t pyggy .` or `docker compose up --build`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IGGY_SYSTEM_PATH=/app/local_data \
    IGGY_TCP_ADDRESS=0.0.0.0:8090 \
    IGGY_KAFKA_ADDRESS=0.0.0.0:9092

WORKDIR /app
COPY . /src
RUN pip install --no-cache-dir "/src[telemetry,s3]" \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /app pyggy \
    && mkdir -p /app/local_data \
    && chown pyggy /app/local_data

USER pyggy
VOLUME ["/app/local_data"]
# 8090: Iggy binary protocol (TCP), 9092: Kafka protocol
EXPOSE 8090 9092 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8090), 2).close()"]
CMD ["pyggy-server"]
