"""The ``wfrunner`` command line; ``main`` is the console-script entry point."""

from wfrunner.cli.app import main

__all__ = ["main"]
