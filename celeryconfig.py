"""Celery overrides for wfrunner, imported when this folder is on ``sys.path``.

Any lower-case Celery setting here is applied on top of wfrunner's defaults
(``wfrunner/tasks/config.py``). Serializer and acknowledgement settings cannot be weakened:
wfrunner ignores a non-JSON serializer or early acks with a warning.
"""

# How many messages a worker process reserves ahead; 1 keeps long nodes from
# starving others, raise it for many short nodes.
worker_prefetch_multiplier = 1

# Send task events so Flower shows every node as it runs.
worker_send_task_events = True
