"""Workflow definitions -> validated IR. Pure: no Redis, no SQL, no Celery."""

from wfrunner.compiler.build import compile_workflow
from wfrunner.compiler.ir import IR, Branch, BranchRule, IRNode, Loop, RetryPolicy
from wfrunner.compiler.source import NamedDefinition, load_definitions, pick_definition

__all__ = [
    "IR",
    "Branch",
    "BranchRule",
    "IRNode",
    "Loop",
    "NamedDefinition",
    "RetryPolicy",
    "compile_workflow",
    "load_definitions",
    "pick_definition",
]
