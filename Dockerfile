FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dispatcher ./dispatcher
COPY workers ./workers
COPY beat_schedule ./beat_schedule
RUN pip install --no-cache-dir .
USER nobody
