# Vigie on the embedded default (SQLite catalog, on-disk index) in one container.
#   docker build -t vigie . && docker run --rm -v vigie-data:/data vigie channels list
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 VIGIE_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY fingerprinting ./fingerprinting
COPY reference_index ./reference_index
COPY service ./service
RUN pip install --no-cache-dir . && useradd --system --home /data vigie \
    && mkdir -p /data && chown vigie /data
USER vigie
VOLUME ["/data"]
ENTRYPOINT ["vigie"]
CMD ["--help"]
