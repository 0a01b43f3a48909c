"""Celery tasks: the only package that imports Celery."""
