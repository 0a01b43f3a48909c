"""Cron schedules: a workflow definition's ``schedule`` starts runs of its name through
Celery beat (docs/schedules.md). :mod:`.spec` reads the field, :mod:`.timing` is the pure
schedule math, :mod:`.firing` the beat task's body."""
