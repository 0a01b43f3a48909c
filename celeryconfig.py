"""Celery overrides for wfrunner, imported when this folder is on ``sys.path``.

Any lower-case Celery setting here is applied on top of wfrunner's defaults
(``wfrunner/tasks/config.py``). Serializer and acknowledgement settings cannot be weakened:
wfrunner ignores a non-JSON serializer or early acks with a warning.
"""

# How many messages a worker process reserves ahead; 1 keeps long nodes from
# starving others, raise it for many short nodes.
worker_prefetch_multiplier = 1

# Task events are off by default; Flower turns them on when it connects. To send them
# always (another monitor than Flower), set WFRUNNER_TASK_EVENTS=1 rather than this.
# worker_send_task_events = True
