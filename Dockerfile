# One image for every wfrunner process: worker, beat, flower, REST API, migrations.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md celeryconfig.py ./
COPY wfrunner ./wfrunner
COPY lua ./lua
COPY migrations ./migrations
COPY examples ./examples
RUN pip install --no-cache-dir . && useradd --create-home wfrunner
USER wfrunner
ENV PYTHONPATH=/app
CMD ["celery", "-A", "wfrunner", "worker", "-Q", "wfrunner.tasks,wfrunner.completion", "--loglevel=INFO"]
