"""CEL conditions and expressions: with :mod:`wfrunner.celvalues` (the variables) and
:mod:`wfrunner.celliterals` (literals that name a failing element), the only module that
imports ``celpy``.

Each expression text is compiled once per process and the program cached, because edge
conditions are evaluated on every token. Values cross the boundary as JSON on both sides:
handlers and payloads never see CEL types.

Bounds, so one hostile expression cannot stall or exhaust a worker:

- compile time: at most ``MAX_EXPRESSION_LENGTH`` characters and ``MAX_TREE_DEPTH`` levels
  of parse tree (about 40 nested parentheses, brackets or calls; deeper trees would
  overflow the evaluator's stack);
- evaluation: celpy walks the parse tree, and every node it visits is a *step*; an
  evaluation may take ``max_steps`` of them (``WFRUNNER_CEL_MAX_STEPS``, default 100,000,
  about half a second) and ``MAX_EVAL_SECONDS`` of wall-clock time; no value a step
  produces may weigh more than ``MAX_VALUE_SIZE`` elements and characters (see
  :class:`_Budget`), and all new values together no more than ``MAX_ALLOCATED``;
- variables: only those an expression names are converted to CEL, once per
  :class:`~wfrunner.celvalues.Variables` (a node evaluation), and the conversion costs
  the evaluation that needed it a step per ``VALUES_PER_STEP`` JSON values;
- the result: nested at most ``MAX_RESULT_DEPTH`` levels.

Each bound fails with a :class:`ConditionError` naming the expression.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import celpy
import lark
from celpy.celparser import CELParseError
from celpy.evaluation import Activation, CELEvalError, Evaluator

from wfrunner import celliterals
from wfrunner.celliterals import LiteralEvaluator
from wfrunner.celvalues import JSONEncoder, OutOfRange, Unrepresentable, Variables, Weights
from wfrunner.celvalues import string as cel_string
from wfrunner.errors import ConditionError
from wfrunner.settings import Settings

#: longest expression accepted; longer ones are rejected at compile time
MAX_EXPRESSION_LENGTH = 4096

#: deepest parse tree accepted (one level of parentheses is ten levels of tree)
MAX_TREE_DEPTH = 400

#: wall-clock seconds one evaluation may take, a backstop behind the step budget
MAX_EVAL_SECONDS = 5.0

#: elements and characters of any one value an evaluation produces, shared parts counted
#: each time they appear (so also of the result)
MAX_VALUE_SIZE = 1_000_000

#: elements and characters of all the new strings, lists and maps of one evaluation
MAX_ALLOCATED = 10_000_000

#: nesting levels of lists and maps in a result
MAX_RESULT_DEPTH = 200

#: JSON values (each element of a list or map one value) converted to CEL per step; about
#: the time of a step, and a 1 MiB payload stays well inside the default budget
VALUES_PER_STEP = 10

#: the variables every expression may use (docs/dsl.md, "CEL"); ``value`` is bound to the element
#: a filter node is testing and is null elsewhere
VARIABLES: tuple[str, ...] = (
    "output",
    "input",
    "inputs",
    "ctx",
    "iteration",
    "value",
    # a join condition's (wfrunner/engine/joinrules.py)
    "arrived",
    "count",
    "dead",
    "expected",
)

_ENV_LOCK = threading.Lock()
_SIZED = (str, bytes, list, dict)
_ERROR_TEXT = 300  # characters of a celpy error text kept (see _shorten)


class _OverBudget(Exception):  # not a CELEvalError, which celpy would catch and bottle up
    """An evaluation went over one of its bounds; the message is the reason."""


class _Budget:
    """What one evaluation may still spend; shared by the evaluators of its macros.

    Sizes are *weights*: the elements and characters a value has when spelled out as JSON,
    a list shared twice counting twice (``[a, a]`` built 30 times over is tiny in memory
    but a billion elements to compare or encode). Each string, list and map a step
    produces is weighed once (remembered by identity); ``allocated`` adds up the lengths
    of the new ones. The lists and maps of the variables come weighed by their conversion
    (``given``), so reading a big variable again and again costs nothing more.
    """

    __slots__ = (
        "allocated",
        "converted",
        "deadline",
        "limit",
        "max_steps",
        "steps",
        "tables",
        "weights",
    )

    def __init__(self, max_steps: int, given: tuple[Weights, ...] = ()) -> None:
        self.max_steps = max_steps
        self.steps = 0
        #: the steps left for visits: ``max_steps`` less what converting variables cost
        self.limit = max_steps
        self.converted = 0
        self.deadline = time.monotonic() + MAX_EVAL_SECONDS
        self.allocated = 0
        self.weights: Weights = {}  # id -> (value kept alive, weight)
        self.tables = (self.weights, *given)  # where a weighed value is found

    def over(self) -> str | None:
        if self.steps > self.limit:
            return f"exceeded the evaluation budget of {self.max_steps:,} steps"
        if time.monotonic() > self.deadline:
            return f"exceeded the evaluation time limit of {MAX_EVAL_SECONDS:g} seconds"
        return None

    def charge(self, values: int) -> None:
        """Pay for converting ``values`` JSON values of a variable to CEL."""
        self.converted += values
        self.limit = self.max_steps - self.converted // VALUES_PER_STEP
        reason = self.over()
        if reason:
            raise _OverBudget(reason)

    def _known(self, value: Any) -> int | None:
        """The weight of a value already weighed (or given), else None."""
        key = id(value)
        for weights in self.tables:
            known = weights.get(key)
            if known is not None and known[0] is value:
                return known[1]
        return None

    def weigh(self, value: Any) -> None:
        """Weigh a step's string, list or map; raise when it or the total is too big."""
        if self._known(value) is not None:  # a variable read is not a value produced
            return
        for item in self._unweighed(value):
            if isinstance(item, str | bytes):
                weight = len(item)
            else:
                children = item if isinstance(item, list) else (*item.keys(), *item.values())
                weight = len(item) + sum(self._weight(child) for child in children)
            self.weights[id(item)] = (item, weight)
            self.allocated += len(item)
            if weight > MAX_VALUE_SIZE:
                raise _OverBudget(
                    f"produced a value of more than {MAX_VALUE_SIZE:,} elements and characters"
                )
        if self.allocated > MAX_ALLOCATED:
            raise _OverBudget(f"built more than {MAX_ALLOCATED:,} elements and characters in all")

    def _weight(self, value: Any) -> int:
        if isinstance(value, _SIZED):
            known = self._known(value)
            assert known is not None  # children are weighed before their parents
            return known
        return 1

    def _unweighed(self, value: Any) -> list[Any]:
        """``value`` and the parts of it not weighed yet, children before parents."""
        order: list[Any] = []
        seen: set[int] = set()
        stack = [value]
        while stack:
            item = stack.pop()
            if id(item) in seen or self._known(item) is not None:
                continue
            seen.add(id(item))
            order.append(item)
            if isinstance(item, list | dict):
                children = item if isinstance(item, list) else (*item.keys(), *item.values())
                stack.extend(child for child in children if isinstance(child, _SIZED))
        return order[::-1]


class _BudgetedEvaluator(LiteralEvaluator):
    """celpy's tree-walking evaluator, counting every parse-tree node it visits."""

    def __init__(self, ast: lark.Tree[Any], activation: Activation, budget: _Budget) -> None:
        super().__init__(ast, activation)
        self.budget = budget

    def sub_evaluator(self, ast: lark.Tree[Any]) -> Evaluator:
        # macros (map, filter, all, exists, ...) evaluate their body with a sub-evaluator
        return _BudgetedEvaluator(ast, self.activation, self.budget)

    def _visit_tree(self, tree: lark.Tree[Any]) -> Any:  # every visit, macros included, ends here
        budget = self.budget
        budget.steps += 1
        if budget.steps > budget.limit or not budget.steps & 1023:
            reason = budget.over()
            if reason:
                raise _OverBudget(reason)
        # lark's Interpreter._visit_tree, minus its v_args "visit_wrapper" (celpy has none)
        result = getattr(self, tree.data)(tree)
        if isinstance(result, _SIZED):
            budget.weigh(result)
        elif isinstance(result, CELEvalError):
            _shorten(result)
        return result


def _shorten(error: CELEvalError) -> None:
    """Cut an error value's texts short. celpy quotes an operand error inside the next
    error's message, so down a chain of ``||`` the texts would double at every level."""

    def short(arg: Any) -> Any:
        if isinstance(arg, str) and len(arg) > _ERROR_TEXT:
            return arg[:_ERROR_TEXT] + "..."
        if isinstance(arg, tuple):
            return tuple(short(a) for a in arg)
        return arg

    error.args = tuple(short(arg) for arg in error.args)


class _BudgetedRunner(celpy.InterpretedRunner):
    #: the variables the expression names (see _reads); only these are converted
    reads: tuple[str, ...] = ()

    def run(self, variables: Variables, budget: _Budget) -> Any:
        context = {name: variables.cel(name, budget.charge) for name in self.reads}
        # the variables sit in a scope on top of the program's base activation, which is
        # built once: building it (celpy's new_activation) costs more than a small
        # evaluation, and evaluating never changes it
        activation = self.base_activation().nested_activation(vars=context)
        return _BudgetedEvaluator(self.ast, activation, budget).evaluate()

    def base_activation(self) -> Activation:
        base: Activation | None = self.__dict__.get("_base")
        if base is None:
            base = self.__dict__["_base"] = self.new_activation()
        return base


def _reads(ast: lark.Tree[Any]) -> tuple[str, ...]:
    """The variables ``ast`` names: identifiers in a primary (``input``, ``.input``), not
    fields (``x.input``) nor functions. A macro variable of the same name counts too,
    which only converts a variable needlessly."""
    names = {
        str(token)
        for node in ast.iter_subtrees()
        if node.data in ("ident", "dot_ident")
        for token in node.children
        if isinstance(token, lark.Token)
    }
    return tuple(name for name in VARIABLES if name in names)


@lru_cache(maxsize=1)
def _default_max_steps() -> int:
    return Settings.from_env().cel_max_steps


@lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    return celpy.Environment(runner_class=_BudgetedRunner)


def _tree_depth(tree: lark.Tree[Any]) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))
    return deepest


@lru_cache(maxsize=4096)
def _program(expression: str) -> _BudgetedRunner:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(
            expression[:60] + "...",
            f"is {len(expression)} characters long; the limit is {MAX_EXPRESSION_LENGTH}",
        )
    if not expression.strip():
        raise ConditionError(expression, "is empty")
    env = _environment()
    # lark parsers are not documented as thread-safe; compiling is rare thanks to the cache
    with _ENV_LOCK:
        try:
            ast = env.compile(expression)
        except CELParseError as exc:
            raise ConditionError(expression, _parse_reason(exc)) from None
        except RecursionError:
            raise ConditionError(expression, "is nested too deeply") from None
    if _tree_depth(ast) > MAX_TREE_DEPTH:
        raise ConditionError(
            expression,
            f"is nested too deeply (more than {MAX_TREE_DEPTH} levels of parse tree; "
            "about 40 levels of parentheses, brackets or calls)",
        )
    problem = _macro_problem(ast)
    if problem:
        raise ConditionError(expression, problem)
    program = env.program(ast, functions={"string": cel_string})
    assert isinstance(program, _BudgetedRunner)
    program.reads = _reads(ast)
    return program


#: macros and their argument counts; the first (``reduce``: first two) must be a name
_MACROS = {"map": 2, "filter": 2, "all": 2, "exists": 2, "exists_one": 2, "reduce": 4}


def _macro_problem(ast: lark.Tree[Any]) -> str | None:
    """celpy parses ``list.map()`` but crashes evaluating it; refuse such calls up front."""
    for call in ast.find_data("member_dot_arg"):
        name = str(call.children[1])
        arity = _MACROS.get(name)
        if arity is None:
            continue
        args = call.children[2].children if len(call.children) > 2 else []
        names = args[: arity - 2] if name == "reduce" else args[:1]
        if len(args) != arity or any(len(list(n.find_data("ident"))) != 1 for n in names):
            wanted = "accumulator, variable, start, expression" if name == "reduce" else None
            return (
                f"calls .{name}() wrongly: it takes ({wanted or 'variable, expression'}), "
                "each variable a plain name"
            )
    return None


def _parse_reason(exc: CELParseError) -> str:
    line, column = getattr(exc, "line", None), getattr(exc, "column", None)
    if line is None or column is None:
        return "does not parse"
    return f"does not parse: syntax error at line {line}, column {column}"


def check(expression: str) -> None:
    """Raise :class:`ConditionError` unless ``expression`` parses."""
    _program(expression)


def to_json(value: Any) -> Any:
    """A CEL result as a plain JSON value."""
    return json.loads(json.dumps(value, cls=JSONEncoder))


def _result_problem(value: Any) -> str | None:
    """Why a result is too big to turn into JSON, if it is; iterative and bounded."""
    size, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str | bytes):
            size += len(item)
        elif isinstance(item, list | dict):
            if depth >= MAX_RESULT_DEPTH:
                return f"produced a value nested more than {MAX_RESULT_DEPTH} levels deep"
            size += len(item)
            if size <= MAX_VALUE_SIZE:
                children = item if isinstance(item, list) else (*item.keys(), *item.values())
                stack.extend((child, depth + 1) for child in children)
        if size > MAX_VALUE_SIZE:
            return f"produced a value of more than {MAX_VALUE_SIZE:,} elements and characters"
    return None


def evaluate(
    expression: str,
    variables: Mapping[str, Any],
    *,
    where: str | None = None,
    max_steps: int | None = None,
) -> Any:
    """Evaluate ``expression`` with the variables of docs/dsl.md; returns JSON.

    Pass one :class:`~wfrunner.celvalues.Variables` to evaluate many expressions over the
    same variables: each variable is converted to CEL once, when an expression names it.
    ``max_steps`` defaults to ``WFRUNNER_CEL_MAX_STEPS`` (read once per process).
    """
    try:
        program = _program(expression)
    except ConditionError as exc:
        raise ConditionError(expression, exc.reason, where=where) from None
    bound = Variables.of(variables)
    steps = _default_max_steps() if max_steps is None else max_steps
    budget = _Budget(steps, tuple(layer.weights for layer in bound.layers()))
    try:
        result = program.run(bound, budget)
    except Unrepresentable as exc:
        raise ConditionError(expression, bound.describe(exc.marker), where=where) from None
    except CELEvalError as exc:
        reason = _with_range(celliterals.describe(exc, expression, _eval_reason), bound, program)
        raise ConditionError(expression, reason, where=where) from None
    except _OverBudget as exc:
        raise ConditionError(expression, str(exc), where=where) from None
    except (RecursionError, MemoryError, OverflowError) as exc:
        raise ConditionError(
            expression, f"evaluation failed: {type(exc).__name__}", where=where
        ) from None
    except Exception as exc:  # celpy walking user input can hit its own bugs, too
        detail = f"{type(exc).__name__}: {exc}"[: 2 * _ERROR_TEXT]
        reason = _with_range(f"evaluation failed: {detail}", bound, program)
        raise ConditionError(expression, reason, where=where) from None
    if isinstance(result, CELEvalError):
        reason = _with_range(celliterals.describe(result, expression, _eval_reason), bound, program)
        raise ConditionError(expression, reason, where=where)
    problem = _result_problem(result)
    if problem:
        raise ConditionError(expression, problem, where=where)
    try:
        return to_json(result)
    except (TypeError, ValueError, RecursionError) as exc:
        reason = f"produced a value that is not JSON ({type(exc).__name__}: {exc})"
        raise ConditionError(expression, reason, where=where) from None


def _with_range(reason: str, variables: Variables, program: _BudgetedRunner) -> str:
    """celpy's own int operations refuse an out-of-range operand without touching it (no
    Unrepresentable) and say so in their error: name the value instead."""
    if OutOfRange.__name__ not in reason:
        return reason
    markers = list(variables.out_of_range(program.reads))
    named = [m for m in markers if repr(m) in reason] or markers
    return variables.describe(named[0]) if named else reason


def evaluate_bool(
    expression: str,
    variables: Mapping[str, Any],
    *,
    where: str | None = None,
    max_steps: int | None = None,
) -> bool:
    """Evaluate a condition, which must produce a boolean (no truthiness guessing)."""
    value = evaluate(expression, variables, where=where, max_steps=max_steps)
    if not isinstance(value, bool):
        raise ConditionError(
            expression, f"must be true or false, but gave {json.dumps(value)[:80]}", where=where
        )
    return value


def _eval_reason(exc: CELEvalError) -> str:
    args = exc.args
    message = str(args[0]) if args else "evaluation failed"
    if len(args) > 2 and args[2]:
        detail = args[2][0] if isinstance(args[2], tuple) else args[2]
        message = f"{message} ({detail})"
    return message if len(message) <= 2 * _ERROR_TEXT else message[: 2 * _ERROR_TEXT] + "..."


__all__ = [
    "MAX_ALLOCATED",
    "MAX_EVAL_SECONDS",
    "MAX_EXPRESSION_LENGTH",
    "MAX_RESULT_DEPTH",
    "MAX_TREE_DEPTH",
    "MAX_VALUE_SIZE",
    "VALUES_PER_STEP",
    "VARIABLES",
    "ConditionError",
    "Variables",
    "check",
    "evaluate",
    "evaluate_bool",
    "to_json",
]
