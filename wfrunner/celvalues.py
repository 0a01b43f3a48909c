"""The CEL variables of one node evaluation: JSON turned into CEL values lazily and once.

Converting JSON to CEL is work proportional to the data, and it used to happen for every
variable on every evaluation: a ``filter`` over n elements converted ``input`` n times
(quadratic), outside any budget. Here a :class:`Variables` converts a variable only when an
expression names it, at most once however many expressions read it (the elements of a
filter, the rules of a branch), and reports every value it converts to a ``charge``
callback, so :mod:`wfrunner.conditions` counts the conversion against the step budget of
the evaluation that needed it.

CEL integers are 64-bit. An integer beyond that range does not fail the conversion (which
would fail every expression, even those that never look at it): it becomes an
:class:`OutOfRange` marker. Any operation on the marker raises :class:`Unrepresentable`,
which the evaluator reports with the marker's path (``input.items[3].n``); a result that
contains it unchanged gets the original integer back. ``string()`` and ``double()`` of it
still work.

With :mod:`wfrunner.conditions`, the only module that imports ``celpy``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

from celpy import celtypes
from celpy.adapter import CELJSONEncoder, json_to_cel

#: CEL's int range
INT_MIN, INT_MAX = -(2**63), 2**63 - 1

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STRING, _INT, _BOOL, _DOUBLE = (
    celtypes.StringType,
    celtypes.IntType,
    celtypes.BoolType,
    celtypes.DoubleType,
)
_LIST, _MAP = celtypes.ListType, celtypes.MapType
_CONTAINERS = (_LIST, _MAP)

#: a weight record: the value (kept alive, so its id stays its own) and its weight
Weights = dict[int, tuple[Any, int]]


class Unrepresentable(Exception):
    """An expression operated on an integer CEL cannot hold (not a CELEvalError: celpy
    must let it through, as conditions._OverBudget)."""

    def __init__(self, marker: OutOfRange) -> None:
        super().__init__(marker.value)
        self.marker = marker


class OutOfRange:
    """Stands in for an integer beyond CEL's 64 bits, failing only when an expression uses it."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"OutOfRange({self.value})"

    def __str__(self) -> str:  # string(x): the digits, exactly
        return str(self.value)

    def __float__(self) -> float:  # double(x): the nearest double
        try:
            return float(self.value)
        except OverflowError:
            raise Unrepresentable(self) from None

    def _used(self, *_: Any) -> NoReturn:
        raise Unrepresentable(self)

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _used
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _used
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _used
    __neg__ = __pos__ = __abs__ = __int__ = __index__ = __bool__ = __hash__ = _used
    __len__ = __iter__ = __contains__ = __getitem__ = _used


def json_default(value: Any) -> Any:
    """For a JSON encoder: an :class:`OutOfRange` a result passed through is its integer."""
    if isinstance(value, OutOfRange):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


class JSONEncoder(CELJSONEncoder):
    """CEL values as JSON text; an :class:`OutOfRange` passed through is its integer again."""

    def default(self, cel_object: Any) -> Any:
        if isinstance(cel_object, OutOfRange):
            return cel_object.value
        return super().default(cel_object)


def string(value: Any) -> celtypes.StringType:
    """CEL's ``string()``: lists and maps as JSON text (celpy gave Python's repr,
    ``ListType([IntType(1)])``), booleans and null as JSON spells them; the rest as celpy
    converts it (numbers, bytes, durations, timestamps, strings)."""
    if isinstance(value, _CONTAINERS):
        return _STRING(json.dumps(value, cls=JSONEncoder, ensure_ascii=False))
    if isinstance(value, _BOOL):
        return _STRING("true" if value else "false")
    if value is None:
        return _STRING("null")
    return _STRING(value)


class _Converter:
    """One variable's conversion: the values' weights (see conditions._Budget), the
    out-of-range markers met, and every container's length reported to ``charge``."""

    __slots__ = ("charge", "count", "markers", "weights")

    def __init__(self, charge: Callable[[int], None], weights: Weights) -> None:
        self.charge = charge
        self.weights = weights
        self.markers: list[OutOfRange] = []
        self.count = 1  # the root value; every container adds its elements

    def convert(self, doc: Any) -> Any:
        kind = type(doc)
        if kind is str:
            return str.__new__(_STRING, doc)
        if kind is int:
            if INT_MIN <= doc <= INT_MAX:
                return int.__new__(_INT, doc)
            marker = OutOfRange(doc)
            self.markers.append(marker)
            return marker
        if kind is bool:
            return int.__new__(_BOOL, doc)
        if kind is float:
            return float.__new__(_DOUBLE, doc)
        if doc is None:
            return None
        if kind is list or kind is tuple:
            self.count += len(doc)
            self.charge(len(doc))
            items = _LIST([self.convert(item) for item in doc])
            return self._weighed(items, len(items) + sum(map(self._weight, items)))
        if kind is dict:
            self.count += len(doc)
            self.charge(len(doc))
            mapping = _MAP()
            weight = len(doc)
            for key, item in doc.items():
                name = str.__new__(_STRING, key) if type(key) is str else json_to_cel(key)
                value = self.convert(item)
                dict.__setitem__(mapping, name, value)
                weight += self._weight(name) + self._weight(value)
            return self._weighed(mapping, weight)
        return json_to_cel(doc)  # datetimes and the like; anything else is a ValueError

    def _weight(self, value: Any) -> int:
        if isinstance(value, str | bytes):
            return len(value)
        if isinstance(value, _CONTAINERS):
            return self.weights[id(value)][1]
        return 1

    def _weighed(self, value: Any, weight: int) -> Any:
        self.weights[id(value)] = (value, weight)
        return value


class Variables(Mapping[str, Any]):
    """The CEL variables of one node evaluation, each converted when first read.

    As a mapping it holds the JSON values. :meth:`bind` makes a layer on top that shares
    the conversions below it: a filter binds ``value`` per element on one
    :class:`Variables`, so ``input`` is converted once for the whole list. ``converted``
    counts the JSON values converted so far (each element of a list or map one value), in
    this layer and those below: pass a :class:`Variables` where a mapping of variables is
    asked for, and it tells how much converting the callee did.
    """

    __slots__ = ("_below", "_cel", "_converted", "_json", "_markers", "weights")

    def __init__(self, values: Mapping[str, Any], below: Variables | None = None) -> None:
        self._json = dict(values)
        self._below = below
        self._cel: dict[str, Any] = {}
        self._markers: dict[str, list[OutOfRange]] = {}
        self._converted = 0
        #: id -> (value, weight) of every list and map converted in this layer
        self.weights: Weights = {}

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Variables:
        """``values`` as :class:`Variables`: itself when it already is (sharing its work)."""
        return values if isinstance(values, Variables) else cls(values)

    def __getitem__(self, name: str) -> Any:
        for layer in self.layers():
            if name in layer._json:
                return layer._json[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(n for layer in self.layers() for n in layer._json))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def bind(self, **values: Any) -> Variables:
        """These variables with ``values`` bound on top (the rest converted once, shared)."""
        return Variables(values, self)

    @property
    def converted(self) -> int:
        below = self._below.converted if self._below is not None else 0
        return self._converted + below

    def layers(self) -> Iterator[Variables]:
        layer: Variables | None = self
        while layer is not None:
            yield layer
            layer = layer._below

    def _owner(self, name: str) -> Variables:
        for layer in self.layers():
            if name in layer._json:
                return layer
        return self

    def cel(self, name: str, charge: Callable[[int], None]) -> Any:
        """The CEL value of ``name`` (null when unbound), converting it on first use."""
        layer = self._owner(name)
        if name not in layer._cel:
            converter = _Converter(charge, layer.weights)
            layer._cel[name] = converter.convert(layer._json.get(name))
            layer._markers[name] = converter.markers
            layer._converted += converter.count
        return layer._cel[name]

    def out_of_range(self, names: tuple[str, ...]) -> Iterator[OutOfRange]:
        """The out-of-range markers in the converted variables among ``names``."""
        for name in names:
            layer = self._owner(name)
            yield from layer._markers.get(name, ())

    def path_of(self, marker: OutOfRange) -> str:
        """Where ``marker`` sits, as ``input.items[3].n`` (found by identity)."""
        for layer in self.layers():
            for name, value in layer._cel.items():
                path = _find(value, marker, name)
                if path is not None:
                    return path
        return "a variable"

    def describe(self, marker: OutOfRange) -> str:
        """Why ``marker`` cannot be used, and what to do instead."""
        return (
            f"{self.path_of(marker)} is {marker.value}, beyond CEL's 64-bit integer range "
            "(-2^63 to 2^63-1); send such a number as a string (or a float) if an expression "
            "needs it"
        )


def _find(value: Any, marker: OutOfRange, root: str) -> str | None:
    stack: list[tuple[Any, str]] = [(value, root)]
    while stack:
        item, path = stack.pop()
        if item is marker:
            return path
        if isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, dict):
            stack.extend((child, _member(path, key)) for key, child in item.items())
    return None


def _member(path: str, key: Any) -> str:
    if isinstance(key, str) and _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key) if isinstance(key, str) else key}]"


__all__ = [
    "INT_MAX",
    "INT_MIN",
    "JSONEncoder",
    "OutOfRange",
    "Unrepresentable",
    "Variables",
    "json_default",
    "string",
]
