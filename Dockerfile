# One image for every role: the command picks the process (`dispatcher api|worker|beat|flower|sandbox`).
# Build stage: turn the project and its runtime dependencies into wheels (no dev extra, no compilers left behind).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY dispatcher ./dispatcher
COPY workers ./workers
COPY beat_schedule ./beat_schedule
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DISPATCHER_STATE_DIR=/var/lib/dispatcher
# A numeric, non-root user so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 dispatcher \
    && useradd --system --uid 10001 --gid dispatcher --home-dir /var/lib/dispatcher --create-home dispatcher
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels campaign-dispatcher && rm -rf /wheels
WORKDIR /var/lib/dispatcher
USER 10001:10001
EXPOSE 8000 5555 8025
CMD ["dispatcher", "api", "--host", "0.0.0.0"]
