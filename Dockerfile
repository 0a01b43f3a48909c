# One image for every wfrunner process: worker, beat, flower, REST API, migrations.
# Without the "embedded" extra: the servers are Compose services (WFRUNNER_REDIS_URL and
# WFRUNNER_DATABASE_URL must be set), and the image carries no Redis or PostgreSQL binaries.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY wfrunner ./wfrunner
COPY lua ./lua
COPY sql ./sql
COPY migrations ./migrations
COPY examples ./examples
RUN pip install --no-cache-dir . && useradd --create-home wfrunner
USER wfrunner
ENV PYTHONPATH=/app
CMD ["celery", "-A", "wfrunner", "worker", "-Q", "wfrunner.tasks,wfrunner.completion", "--loglevel=INFO"]
