# One image for every Clipper role (worker per queue, dashboard); see docker-compose.yml.
FROM python:3.11-slim-bookworm
# rclone copies exported packages to the shared drive; ca-certificates for its https remotes.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg espeak-ng \
    rclone ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY clipper ./clipper
COPY workers ./workers
COPY dashboard ./dashboard
RUN pip install --no-cache-dir .
ENV CLIPPER_HOME=/data HF_HUB_OFFLINE=1
VOLUME /data
CMD ["python", "-m", "workers"]
