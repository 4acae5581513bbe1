# Vigie in one container, on the embedded default (SQLite, in-process workers, on-disk index):
#   docker build -t vigie . && docker run -p 8000:8000 -v vigie-data:/data vigie
# Other roles of the same image: `vigie worker` (with VIGIE_BROKER_URL=redis://...),
# `vigie ingest` (live reference feeds), or any CLI command (`vigie keys create ...`).
# Scale-out (PostgreSQL, Redis, API, workers, ingester): docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    VIGIE_DATA_DIR=/data VIGIE_HOST=0.0.0.0 VIGIE_PORT=8000
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fingerprinting ./fingerprinting
COPY reference_index ./reference_index
COPY service ./service
RUN pip install --no-cache-dir ".[postgres,redis]" \
    && useradd --system --uid 10001 --home /data vigie \
    && mkdir -p /data && chown vigie /data
USER vigie
VOLUME ["/data"]
EXPOSE 8000
# `vigie serve` by default; docker-compose.yml gives the worker and ingest roles their own
# checks (python -m service.healthcheck worker|ingest).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "service.healthcheck", "api"]
ENTRYPOINT ["vigie"]
CMD ["serve"]
