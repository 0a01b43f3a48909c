"""Pictures of workflows and runs (``wfrunner graph``, and the REST API's
``GET /workflows/{id}/graph.svg`` and ``GET /runs/{id}/graph.svg``).

:mod:`wfrunner.pictures.coloured` draws a run as text (pure); :mod:`.graphviz` turns DOT
into SVG or PNG. The two functions here are what the API serves: each reads what it
draws through the runtime and returns the SVG document's bytes (``image/svg+xml``).
They raise :class:`~wfrunner.errors.NotFoundError` for an unknown id (404) and
:class:`~wfrunner.errors.GraphvizError` when ``dot`` is missing or fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wfrunner.compiler.render import to_dot
from wfrunner.pictures.coloured import run_dot
from wfrunner.pictures.graphviz import draw

if TYPE_CHECKING:
    from wfrunner.runtime import Runtime

#: the content type of what run_svg and workflow_svg return
SVG_CONTENT_TYPE = "image/svg+xml"


def run_svg(run_id: str, rt: Runtime | None = None) -> bytes:
    """The run's workflow as SVG, nodes coloured by status, the taken path bold."""
    from wfrunner.client import get_run
    from wfrunner.runtime import runtime

    rt = rt or runtime()
    doc = get_run(run_id, rt)
    return draw(run_dot(rt.ir(doc["workflow_id"]), doc), "svg")


def workflow_svg(workflow_id: str, rt: Runtime | None = None) -> bytes:
    """A registered workflow as SVG (the drawing of ``wfrunner graph FILE --format svg``)."""
    from wfrunner.runtime import runtime

    rt = rt or runtime()
    return draw(to_dot(rt.ir(workflow_id)), "svg")


__all__ = ["SVG_CONTENT_TYPE", "run_svg", "workflow_svg"]
