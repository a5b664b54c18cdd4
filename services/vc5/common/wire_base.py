"""The base of every wire struct (vc5.common.wire): a frozen dataclass that is one D-Bus struct."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Mapping


class Struct:
    """A frozen dataclass that is one D-Bus struct: fields in wire order.

    Subclasses set SIGNATURE (one complete struct type) and, for fields that
    hold nested structs, NESTED = {field: StructClass} (the field is an array
    of that struct on the wire, a tuple here).
    """

    SIGNATURE: ClassVar[str] = "()"
    NESTED: ClassVar[Mapping[str, type]] = {}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        names_ = cls.__dict__.get("_FIELDS")
        if names_ is None:
            names_ = tuple(f.name for f in dataclasses.fields(cls))
            cls._FIELDS = names_
        return names_

    def to_dbus(self) -> list:
        out = []
        for name in self.field_names():
            value = getattr(self, name)
            if name in self.NESTED:
                value = [v.to_dbus() for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out.append(value)
        return out

    @classmethod
    def from_dbus(cls, value) -> "Struct":
        values = list(value)
        fields_ = cls.field_names()
        if len(values) != len(fields_):
            raise ValueError(f"{cls.__name__}: {len(values)} items on the wire, expected {len(fields_)} "
                             f"({cls.SIGNATURE})")
        kwargs = {}
        for name, v in zip(fields_, values):
            nested = cls.NESTED.get(name)
            if nested is not None:
                v = tuple(nested.from_dbus(x) for x in v)
            elif isinstance(v, list):
                v = tuple(v)
            kwargs[name] = v
        return cls(**kwargs)
