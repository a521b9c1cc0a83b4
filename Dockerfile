# The worker image; docker-compose.yml also runs the one-shot setup and the projector from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json

WORKDIR /app

COPY . .
# Only the worker's own dependencies: the dev stack's extra (`devstack`: Temporal CLI, embedded
# PostgreSQL) and the test tools stay out of the image.
RUN pip install . \
    && useradd --create-home --uid 10001 --user-group escalation

USER escalation

# SIGTERM stops the worker gracefully (ESCALATION_SHUTDOWN_GRACE); exec form so it gets the signal.
CMD ["python", "worker.py"]
