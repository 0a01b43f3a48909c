"""``/runs/{id}/graph.svg``, ``/workflows/{id}/graph.svg`` and ``/metrics``: what the API
serves that is not JSON (pictures through Graphviz, Prometheus' text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from wfrunner.api.deps import RuntimeDep
from wfrunner.api.responses import errors

router = APIRouter(tags=["pictures", "metrics"])

_SVG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/svg+xml": {}}, "description": "The picture, as SVG"}
}


@router.get(
    "/runs/{run_id}/graph.svg", response_class=Response, responses={**_SVG, **errors(401, 404, 503)}
)
def run_graph(run_id: str, rt: RuntimeDep) -> Response:
    """The run's workflow, nodes coloured by status and the path its tokens took in bold
    (503 when Graphviz is not installed on the API's host)."""
    from wfrunner.pictures import SVG_CONTENT_TYPE, run_svg

    return Response(run_svg(run_id, rt), media_type=SVG_CONTENT_TYPE)


@router.get(
    "/workflows/{workflow_id}/graph.svg",
    response_class=Response,
    responses={**_SVG, **errors(401, 404, 503)},
)
def workflow_graph(workflow_id: str, rt: RuntimeDep) -> Response:
    """The workflow's nodes and edges, conditions on the edges."""
    from wfrunner.pictures import SVG_CONTENT_TYPE, workflow_svg

    return Response(workflow_svg(workflow_id, rt), media_type=SVG_CONTENT_TYPE)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus' text format"},
        **errors(401),
    },
)
def metrics() -> Response:
    """Prometheus metrics of this API process (runs it cancelled, queue depths); workers
    export their own on WFRUNNER_METRICS_PORT."""
    from wfrunner.metrics import render

    body, content_type = render()
    return Response(body, media_type=content_type)
