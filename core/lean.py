"""`lean`: a data class whose `__init__`, `__repr__` and `__eq__` are not generated.

`@dataclass` writes each class's `__init__`, `__repr__` and `__eq__` as source text and compiles
it with `exec` when the class is defined: for the ~50 config sections and metadata entities on
the server's start path that was the larger part of importing `pyggy.config` and
`pyggy.core.model` (BENCHMARKS.md, "Start-up, third pass"). A `lean` class is an ordinary
`dataclasses.dataclass(slots=True)` — `dataclasses.fields`, `replace`, `asdict`, pickling and
type checkers see it as one — whose three methods are shared functions reading the class's
fields (`dataclasses.fields`) when called. They behave as the generated ones do: the same
positional and keyword arguments, defaults and default factories, the same `TypeError`s, the
same repr text, equality of the fields as a tuple and only with the same class, unhashable.

`lean_frozen` is the same for `@dataclass(frozen=True, slots=True)`, whose `__hash__`,
`__setattr__` and `__delattr__` are generated too: they are shared functions here, and pickling
and copying restore the fields as a frozen dataclass does.

The price is a slower `__init__` (a loop over the fields instead of straight-line code: ~7 µs
against ~0.8 µs for `TopicOptions()`'s 13 fields): for classes built once per start or per
metadata change, not on a per-request path. `__post_init__` is
called as the generated `__init__` calls it, but with no `InitVar` arguments (an `InitVar`
field is refused as an unexpected argument); keyword-only fields are refused when the class is
defined. Use `@dataclass` for those. Only the public `dataclasses` interface is
used.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

_T = typing.TypeVar("_T")
_MISSING = dataclasses.MISSING
_Params = tuple[tuple[str, Any, Any], ...]
_Plan = tuple[_Params, dict[str, int], _Params, Callable[[Any, str, Any], None],
              Callable[[Any], None] | None]
# per class: its __init__ parameters (name, default, default factory), their positions by
# name, the fields set without one (init=False), how a field is set, its __post_init__;
# built at the class's first instance
_PLANS: dict[type, _Plan] = {}
_FROZEN = "__lean_frozen__"  # a class attribute: True on a frozen lean class


@typing.dataclass_transform(field_specifiers=(dataclasses.field,))
def lean(cls: type[_T]) -> type[_T]:
    """`@dataclass(slots=True)` with the shared `__init__`, `__repr__` and `__eq__` (the
    module's docstring says what differs: nothing a caller sees but the speed of `__init__`)."""
    return _make(cls, frozen=False)


@typing.dataclass_transform(field_specifiers=(dataclasses.field,), frozen_default=True)
def lean_frozen(cls: type[_T]) -> type[_T]:
    """`@dataclass(frozen=True, slots=True)` with shared methods: `lean`'s, a `__hash__` of
    the compared fields, and a `__setattr__` and `__delattr__` raising `FrozenInstanceError`."""
    return _make(cls, frozen=True)


def _make(cls: type[_T], frozen: bool) -> type[_T]:
    # a docstring, so that @dataclass does not compute the class's signature for one
    cls.__doc__ = cls.__doc__ or f"`{cls.__name__}`."
    methods: dict[str, object] = {"__init__": _init, "__repr__": _repr, "__eq__": _eq}
    if frozen:
        methods.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr,
                       __getstate__=_getstate, __setstate__=_setstate)
    for name, method in methods.items():
        if name in cls.__dict__:
            if frozen and name in ("__setattr__", "__delattr__"):
                raise TypeError(f"{cls.__qualname__}: a frozen class defines {name}")
            continue
        setattr(cls, name, method)
    if cls.__dict__["__eq__"] is _eq and "__hash__" not in cls.__dict__:
        # as @dataclass with eq=True: mutable instances are unhashable, frozen ones hash
        # the fields they compare
        cls.__hash__ = _hash if frozen else None  # type: ignore[assignment]
    setattr(cls, _FROZEN, frozen)
    made = dataclasses.dataclass(slots=True, init=False, repr=False, eq=False)(cls)
    for f in dataclasses.fields(made):  # type: ignore[arg-type]
        if f.kw_only:
            raise TypeError(f"{cls.__qualname__}.{f.name}: a lean class has no keyword-only "
                            "fields")
    return made


def _plan(cls: type) -> _Plan:
    fields = dataclasses.fields(cls)
    params = tuple((f.name, f.default, f.default_factory) for f in fields if f.init)
    plan = (params, {name: i for i, (name, _, _) in enumerate(params)},
            tuple((f.name, f.default, f.default_factory) for f in fields if not f.init),
            object.__setattr__ if getattr(cls, _FROZEN) else setattr,
            getattr(cls, "__post_init__", None))
    _PLANS[cls] = plan
    return plan


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    params, positions, others, put, post_init = _PLANS.get(cls) or _plan(cls)
    if len(args) > len(params) or kwargs:
        _check_call(cls, params, positions, args, kwargs)
    missing = []
    for i, (name, default, factory) in enumerate(params):
        if i < len(args):
            value = args[i]
        elif name in kwargs:
            value = kwargs[name]
        elif default is not _MISSING:
            value = default
        elif factory is not _MISSING:
            value = factory()
        else:
            missing.append(name)
            continue
        put(self, name, value)
    if missing:
        names = [repr(name) for name in missing]
        listed = names[0] if len(names) == 1 else (
            f"{names[0]} and {names[1]}" if len(names) == 2
            else ", ".join(names[:-1]) + f", and {names[-1]}")
        raise TypeError(f"{cls.__qualname__}.__init__() missing {len(names)} required "
                        f"positional argument{'s' if len(names) > 1 else ''}: {listed}")
    for name, default, factory in others:
        if factory is not _MISSING:
            put(self, name, factory())
        elif default is not _MISSING:
            put(self, name, default)
    if post_init is not None:
        post_init(self)


def _check_call(cls: type, params: _Params, positions: dict[str, int], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> None:
    """The TypeError of a call the generated `__init__` would refuse, in Python's words."""
    for key in kwargs:
        position = positions.get(key)
        if position is None:
            raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword "
                            f"argument '{key}'")
        if position < len(args):
            raise TypeError(f"{cls.__qualname__}.__init__() got multiple values for "
                            f"argument '{key}'")
    if len(args) > len(params):
        required = 1 + sum(1 for _, default, factory in params
                           if default is _MISSING and factory is _MISSING)
        takes = (f"{required}" if required == len(params) + 1
                 else f"from {required} to {len(params) + 1}")
        raise TypeError(f"{cls.__qualname__}.__init__() takes {takes} positional arguments "
                        f"but {len(args) + 1} were given")


def _repr(self: Any) -> str:
    return f"{type(self).__qualname__}(" + ", ".join(
        f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr) + ")"


def _eq(self: Any, other: Any) -> Any:  # a bool, or NotImplemented
    if other.__class__ is not self.__class__:
        return NotImplemented
    names = [f.name for f in dataclasses.fields(self) if f.compare]
    return (tuple(getattr(self, n) for n in names)
            == tuple(getattr(other, n) for n in names))


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self)
                      if (f.compare if f.hash is None else f.hash)))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> list[Any]:
    """A frozen instance's state for pickle and copy: its fields' values, in order."""
    return [getattr(self, f.name) for f in dataclasses.fields(self)]


def _setstate(self: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(self), state, strict=True):
        object.__setattr__(self, f.name, value)
