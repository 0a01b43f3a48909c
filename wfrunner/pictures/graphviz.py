"""DOT text to SVG or PNG through Graphviz's ``dot`` binary (no Python binding: the
binary is what every platform packages, and a subprocess with a timeout cannot hang or
crash the caller on a pathological graph)."""

from __future__ import annotations

import shutil
import subprocess

from wfrunner.errors import GraphvizError

#: the formats dot draws for us
IMAGE_FORMATS = ("svg", "png")
#: seconds dot may take on one picture
DOT_TIMEOUT = 30.0

INSTALL_HINT = (
    "Graphviz's 'dot' is not installed: install Graphviz (apt-get install graphviz / "
    "brew install graphviz) or use --format dot|mermaid"
)


def draw(dot_source: str, fmt: str, timeout: float = DOT_TIMEOUT) -> bytes:
    """``dot_source`` drawn as ``fmt`` (svg or png)."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {IMAGE_FORMATS}")
    binary = shutil.which("dot")
    if binary is None:
        raise GraphvizError(INSTALL_HINT)
    try:
        done = subprocess.run(
            [binary, f"-T{fmt}"],
            input=dot_source.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GraphvizError(f"Graphviz's dot took more than {timeout:g} s to draw") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GraphvizError(
            f"Graphviz's dot failed (exit {done.returncode}): {reason[0] if reason else ''}"
        )
    return done.stdout
