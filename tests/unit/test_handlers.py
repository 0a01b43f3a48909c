"""The handler registry: registration, conflicts, look-up errors and module loading."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wfrunner import handlers
from wfrunner.errors import ConfigurationError, HandlerError


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Restore the registry, the loaded-module list, sys.path and sys.modules."""
    registry, loaded = dict(handlers._REGISTRY), list(handlers._LOADED)
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules = set(sys.modules)
    yield
    handlers._REGISTRY.clear()
    handlers._REGISTRY.update(registry)
    handlers._LOADED[:] = loaded
    for name in set(sys.modules) - modules:
        if name.startswith("wfr_test_"):
            del sys.modules[name]


def test_register_and_get() -> None:
    @handlers.handler("test.double")
    def double(input: Any, config: dict[str, Any]) -> Any:
        return input * 2

    assert handlers.get_handler("test.double") is double
    assert double(2, {}) == 4  # returned unchanged
    assert handlers.registered()["test.double"] is double


def test_registered_is_a_copy() -> None:
    handlers.registered()["test.sneaky"] = print
    with pytest.raises(HandlerError):
        handlers.get_handler("test.sneaky")


def test_a_different_function_under_a_taken_name_is_refused() -> None:
    @handlers.handler("test.taken")
    def first(input: Any, config: dict[str, Any]) -> Any:
        return 1

    def second(input: Any, config: dict[str, Any]) -> Any:
        return 2

    with pytest.raises(ConfigurationError) as info:
        handlers.handler("test.taken")(second)
    here = f"{__name__}.test_a_different_function_under_a_taken_name_is_refused.<locals>"
    assert str(info.value) == (
        f"handler name 'test.taken' is already registered to {here}.first; "
        f"cannot register {here}.second under it too (rename one of them)"
    )
    assert handlers.get_handler("test.taken") is first


def test_the_same_function_may_register_again() -> None:
    def make() -> Any:
        def step(input: Any, config: dict[str, Any]) -> Any:
            return input

        return step

    old, new = make(), make()  # same module and qualname, as after a reload
    handlers.handler("test.reloaded")(old)
    handlers.handler("test.reloaded")(new)
    assert handlers.get_handler("test.reloaded") is new


def test_empty_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="non-empty string"):
        handlers.handler(" ")


def test_unknown_handler_message_without_modules() -> None:
    handlers._LOADED.clear()
    with pytest.raises(HandlerError) as info:
        handlers.get_handler("nope")
    assert str(info.value) == (
        "no handler registered under 'nope'; register it with @wfrunner.handler('nope') "
        "in a module listed in WFRUNNER_HANDLERS (none loaded)"
    )


def _write(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(body)


def test_load_modules_imports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handlers._LOADED.clear()
    _write(
        tmp_path,
        "wfr_test_steps",
        "import wfrunner.handlers as h\n"
        "COUNT = globals().get('COUNT', 0) + 1\n"
        "@h.handler('test.upper')\n"
        "def upper(input, config):\n"
        "    return input.upper()\n",
    )
    _write(tmp_path, "wfr_test_other", "")
    monkeypatch.chdir(tmp_path)
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))

    handlers.load_modules(["wfr_test_steps", " wfr_test_other ", ""])
    handlers.load_modules(["wfr_test_steps"])  # once only

    assert str(tmp_path) in sys.path
    assert handlers.get_handler("test.upper")("ab", {}) == "AB"
    assert sys.modules["wfr_test_steps"].COUNT == 1
    assert handlers.loaded_modules() == ("wfr_test_steps", "wfr_test_other")
    with pytest.raises(HandlerError) as info:
        handlers.get_handler("missing")
    assert str(info.value).endswith(
        "in a module listed in WFRUNNER_HANDLERS (loaded: wfr_test_steps, wfr_test_other)"
    )


def test_a_failing_import_names_the_module_and_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, "wfr_test_broken", "raise RuntimeError('no database here')\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        handlers.load_modules(["wfr_test_broken"])
    assert str(info.value) == (
        "WFRUNNER_HANDLERS: cannot import 'wfr_test_broken': RuntimeError: no database here"
    )
    assert "wfr_test_broken" not in handlers.loaded_modules()


def test_a_missing_module_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        handlers.load_modules(["wfr_test_absent"])
    assert str(info.value) == (
        "WFRUNNER_HANDLERS: cannot import 'wfr_test_absent': "
        "ModuleNotFoundError: No module named 'wfr_test_absent'"
    )
