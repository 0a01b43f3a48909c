"""The handler registry: ``@wfrunner.handler("name")`` and the modules that fill it.

A node whose ``config.function_name`` is ``"name"`` runs the function registered under that
name (docs/dsl.md, "Handlers"). Handlers live in user modules listed in
``WFRUNNER_HANDLERS``; workers and the CLI import them with :func:`load_modules`, so
registration happens as an import side effect, the way Celery discovers tasks.

The registry is a plain module-level dict: it is filled once per process at start-up and
only read afterwards, so it needs no lock and no persistence.

A handler is ``fn(input, config)`` or ``fn(input, config, context)``: which one is decided
from its signature once, when it is registered (:func:`takes_context`), and kept with it,
so the executor's call costs one attribute read more than a bare call, not an
``inspect.signature`` per node.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from wfrunner.errors import ConfigurationError, HandlerError

#: a handler: ``fn(input, config) -> output``, all JSON values
Handler = Callable[[Any, dict[str, Any]], Any]
H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Registration:
    """A registered handler and how it is called."""

    fn: Callable[..., Any]
    #: True: ``fn(input, config, context)``; False: ``fn(input, config)``
    takes_context: bool
    #: nodes of this handler that may run at once across all workers (None: no limit;
    #: see wfrunner/engine/handler_slots.py)
    max_concurrency: int | None = None


_REGISTRY: dict[str, Registration] = {}
_LOADED: list[str] = []


def _qualified(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}"


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def takes_context(name: str, fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is called with a third argument, the :class:`wfrunner.NodeContext`.

    It is when it accepts three positional arguments (``fn(input, config, ctx)``, a third
    one with a default too); two (or ``*args`` past two) keep the original call. Anything
    that cannot be called either way (one positional parameter, four required, a required
    keyword-only one) is refused here, naming the handler, rather than failing each node
    that runs it with a ``TypeError``.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: called as before
        return False
    positional = [p for p in params if p.kind in _POSITIONAL]
    required = [p for p in positional if p.default is inspect.Parameter.empty]
    star = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    keyword_only = [
        p.name
        for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    ]
    problem = None
    if keyword_only:
        problem = f"required keyword-only parameter {keyword_only[0]!r}"
    elif len(required) > 3:
        problem = f"{len(required)} required parameters"
    elif len(positional) < 2 and not star:
        problem = f"{len(positional)} positional parameter{'s' if len(positional) != 1 else ''}"
    if problem is not None:
        raise ConfigurationError(
            f"handler {name!r} ({_qualified(fn)}) has {problem}: a handler is "
            "fn(input, config) or fn(input, config, context)"
        )
    return len(positional) >= 3


def handler(name: str, *, max_concurrency: int | None = None) -> Callable[[H], H]:
    """Register the decorated ``fn(input, config)`` or ``fn(input, config, context)``
    under ``name``; returns it unchanged. ``max_concurrency``: at most that many nodes of
    this handler run at once across the whole fleet (a rate-limited API); the others wait
    for a slot (WFRUNNER_HANDLER_CONCURRENCY overrides it).

    A second, different function under the same name is a configuration mistake that
    would otherwise make nodes run whichever module happened to be imported last, so it
    fails loudly. The same function registered again (same module and qualified name, as
    when a module is reloaded) replaces the old object silently.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"handler name must be a non-empty string, not {name!r}")
    if max_concurrency is not None and (type(max_concurrency) is not int or max_concurrency < 1):
        raise ConfigurationError(
            f"handler {name!r}: max_concurrency must be a whole number of at least 1, "
            f"not {max_concurrency!r} (leave it out for no limit)"
        )

    def register(fn: H) -> H:
        existing = _REGISTRY.get(name)
        if existing is not None and _qualified(existing.fn) != _qualified(fn):
            raise ConfigurationError(
                f"handler name {name!r} is already registered to {_qualified(existing.fn)}; "
                f"cannot register {_qualified(fn)} under it too (rename one of them)"
            )
        _REGISTRY[name] = Registration(fn, takes_context(name, fn), max_concurrency)
        return fn

    return register


def get_handler(name: str) -> Callable[..., Any]:
    """The function registered under ``name``, or a :class:`HandlerError` saying how to fix it."""
    return lookup(name).fn


def lookup(name: str) -> Registration:
    """The registration of ``name`` (the function and how to call it), or a
    :class:`HandlerError` saying how to fix it."""
    try:
        return _REGISTRY[name]
    except KeyError:
        loaded = f"loaded: {', '.join(_LOADED)}" if _LOADED else "none loaded"
        raise HandlerError(
            f"no handler registered under {name!r}; register it with "
            f"@wfrunner.handler({name!r}) in a module listed in WFRUNNER_HANDLERS ({loaded})"
        ) from None


def max_concurrency(name: str) -> int | None:
    """The limit ``name`` was registered with (None: none, or no such handler here)."""
    entry = _REGISTRY.get(name)
    return entry.max_concurrency if entry is not None else None


def parse_concurrency(text: str) -> dict[str, int]:
    """``WFRUNNER_HANDLER_CONCURRENCY``: ``"charge=2,refund=1"`` -> handler -> limit."""
    limits: dict[str, int] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ConfigurationError(
                f"WFRUNNER_HANDLER_CONCURRENCY: {item.strip()!r} is not <handler>=<limit> "
                "with a limit of at least 1 (e.g. charge=2,refund=1)"
            )
        limits[name.strip()] = int(value)
    return limits


def load_modules(modules: Iterable[str]) -> None:
    """Import each handler module once, from the working directory as Celery's ``-A`` does.

    Users run ``celery -A wfrunner worker`` next to their ``handlers.py``; without the
    working directory on ``sys.path`` (it is absent under console scripts) that module
    would not be importable. Any import failure becomes a :class:`ConfigurationError`
    naming the module, because a worker without its handlers must not start.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()  # modules written since start-up (tests, notebooks)
    for module in modules:
        module = module.strip()
        if not module or module in _LOADED:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ConfigurationError(
                f"WFRUNNER_HANDLERS: cannot import {module!r}: {type(exc).__name__}: {exc}"
            ) from exc
        _LOADED.append(module)


def loaded_modules() -> tuple[str, ...]:
    """The handler modules imported so far, in import order."""
    return tuple(_LOADED)


def registered() -> dict[str, Callable[..., Any]]:
    """A copy of the registry (name -> function), safe to inspect or iterate."""
    return {name: entry.fn for name, entry in _REGISTRY.items()}


def known_names(modules: Iterable[str] | None = None) -> frozenset[str] | None:
    """The registered handler names once ``modules`` (default: ``WFRUNNER_HANDLERS``) are
    imported, for the compiler to check each ``function_name`` against; ``None`` when no
    module is configured: the workers' modules are not known, so no name is judged."""
    if modules is None:
        from wfrunner.settings import Settings

        modules = Settings.from_env().handler_modules
    load_modules(modules)
    return frozenset(_REGISTRY) if _LOADED else None


__all__ = [
    "Handler",
    "Registration",
    "get_handler",
    "handler",
    "known_names",
    "load_modules",
    "loaded_modules",
    "lookup",
    "max_concurrency",
    "parse_concurrency",
    "registered",
    "takes_context",
]
