"""`construct` classes for Kafka's types; each can run interpreted or emit code for `.compile()`.

`KafkaStruct` is a Struct specialised for Kafka: it decodes to a plain ``dict`` (fields absent in
the version take their defaults), fills missing fields with defaults when building, groups runs
of fixed-width fields into one ``struct`` call, and in flexible versions ends with a tag buffer
(known tags decoded by number, unknown ones skipped; tagged fields written only when ≠ default).
Streams are `primitives.Input` (parse) and anything with ``write`` (build; `Output` keeps
RECORDS chunks uncopied).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from construct import Construct

from . import primitives as P
from .primitives import Input, Output, as_input

Reader = Callable[[Input], Any]
Writer = Callable[[Any, Any], None]


def _sname(fmt: str) -> str:
    """A generated-module name for the ``struct.Struct`` of ``fmt``."""
    return "_S_" + fmt.replace("?", "Z")


def _use(code: Any, *names: str) -> None:
    """Make primitives' ``names`` global in the generated module."""
    code.append(f"from pyggy.kafka_wire.protocol.primitives import {', '.join(names)}")


class KafkaConstruct(Construct):
    """Base: ``min_size`` bounds array counts; ``fmt`` is set for fixed-width scalars."""

    min_size = 1
    fmt: str | None = None

    def read(self, io: Input) -> Any:
        raise NotImplementedError

    def write(self, io: Any, obj: Any) -> None:
        raise NotImplementedError

    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        return self.read(as_input(stream))

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        self.write(stream, obj)
        return obj


class Scalar(KafkaConstruct):
    """A fixed-width big-endian number or boolean (``struct`` format char ``fmt``)."""

    fmt: str

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.fmt = fmt
        self.packer = struct.Struct(">" + fmt)
        self.min_size = self.packer.size

    def read(self, io: Input) -> Any:
        return self.packer.unpack_from(io.buf, io.take(self.min_size))[0]

    def write(self, io: Any, obj: Any) -> None:
        io.write(self.packer.pack(obj))

    def _emitparse(self, code: Any) -> str:
        code.append(f"{_sname(self.fmt)} = struct.Struct('>{self.fmt}')")
        return f"{_sname(self.fmt)}.unpack_from(io.buf, io.take({self.min_size}))[0]"

    def _emitbuild(self, code: Any) -> str:
        code.append(f"{_sname(self.fmt)} = struct.Struct('>{self.fmt}')")
        return f"io.write({_sname(self.fmt)}.pack(obj))"


class Leaf(KafkaConstruct):
    """A variable-size leaf read and written by a pair of `primitives` functions."""

    def __init__(self, reader: Reader, writer: Writer, min_size: int) -> None:
        super().__init__()
        self.reader, self.writer, self.min_size = reader, writer, min_size

    def read(self, io: Input) -> Any:
        return self.reader(io)

    def write(self, io: Any, obj: Any) -> None:
        self.writer(io, obj)

    def _emitparse(self, code: Any) -> str:
        _use(code, self.reader.__name__)
        return f"{self.reader.__name__}(io)"

    def _emitbuild(self, code: Any) -> str:
        _use(code, self.writer.__name__)
        return f"{self.writer.__name__}(io, obj)"


_LEAVES: dict[tuple[str, bool, bool], tuple[Reader, Writer, int]] = {
    # (type, compact, nullable) → (reader, writer, minimum encoded size)
    ("str", False, False): (P.r_str, P.w_str, 2),
    ("str", False, True): (P.r_nstr, P.w_nstr, 2),
    ("str", True, False): (P.r_cstr, P.w_cstr, 1),
    ("str", True, True): (P.r_cnstr, P.w_cnstr, 1),
    ("bytes", False, False): (P.r_bytes, P.w_bytes, 4),
    ("bytes", False, True): (P.r_nbytes, P.w_nbytes, 4),
    ("bytes", True, False): (P.r_cbytes, P.w_cbytes, 1),
    ("bytes", True, True): (P.r_cnbytes, P.w_cnbytes, 1),
    ("records", False, False): (P.r_records_nn, P.w_bytes, 4),
    ("records", False, True): (P.r_records, P.w_nbytes, 4),
    ("records", True, False): (P.r_crecords_nn, P.w_cbytes, 1),
    ("records", True, True): (P.r_crecords, P.w_cnbytes, 1),
}
_FMT = {
    "i8": "b", "i16": "h", "i32": "i", "i64": "q", "u16": "H", "u32": "I", "f64": "d", "bool": "?",
}  # fmt: skip


def leaf(typ: str, compact: bool, nullable: bool) -> KafkaConstruct:
    """The construct for a non-struct, non-array schema type."""
    if typ in _FMT:
        return Scalar(_FMT[typ])
    if typ == "uuid":
        return Leaf(P.r_uuid, P.w_uuid, 16)
    return Leaf(*_LEAVES[(typ, compact, nullable)])


_COUNTS = {  # (compact, nullable) → (count reader, count writer)
    (False, False): (P.r_count, P.w_count),
    (False, True): (P.r_ncount, P.w_ncount),
    (True, False): (P.r_ccount, P.w_ccount),
    (True, True): (P.r_cncount, P.w_cncount),
}


class Array(KafkaConstruct):
    """ARRAY / COMPACT_ARRAY, optionally nullable (None); counts are bounded before allocation."""

    def __init__(self, elem: KafkaConstruct, compact: bool, nullable: bool) -> None:
        super().__init__()
        self.elem = elem
        self.count_reader, self.count_writer = _COUNTS[(compact, nullable)]
        self.min_size = 1 if compact else 4
        self.bulk = P.scalar_array(elem.fmt) if elem.fmt else None

    def read(self, io: Input) -> list[Any] | None:
        n = self.count_reader(io, max(self.elem.min_size, 1))
        if n < 0:
            return None
        if self.bulk:
            return self.bulk[0](io, n)
        return [self.elem.read(io) for _ in range(n)]

    def write(self, io: Any, obj: Any) -> None:
        if self.count_writer(io, obj) > 0:
            if self.bulk:
                self.bulk[1](io, obj)
            else:
                for item in obj:
                    self.elem.write(io, item)

    def _emit_bulk(self, code: Any) -> str:
        name = "_bulk" + _sname(self.elem.fmt or "")
        _use(code, "scalar_array")
        code.append(f"{name} = scalar_array('{self.elem.fmt}')")
        return name

    def _emitparse(self, code: Any) -> str:
        fn, cr = f"parse_karray_{code.allocateId()}", self.count_reader.__name__
        _use(code, cr)
        if self.bulk:
            bulk = self._emit_bulk(code)
            body = f"{bulk}[0](io, n)"
        else:
            body = f"[{self.elem._compileparse(code)} for _ in range(n)]"
        code.append(f"""
            def {fn}(io, this):
                n = {cr}(io, {max(self.elem.min_size, 1)})
                return None if n < 0 else {body}
        """)
        return f"{fn}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        fn, cw = f"build_karray_{code.allocateId()}", self.count_writer.__name__
        _use(code, cw)
        if self.bulk:
            loop = f"{self._emit_bulk(code)}[1](io, obj)"
        else:
            loop = f"for obj in obj: {self.elem._compilebuild(code)}"
        code.append(f"""
            def {fn}(obj, io, this):
                if {cw}(io, obj) > 0:
                    {loop}
        """)
        return f"{fn}(obj, io, this)"


class NullableStruct(KafkaConstruct):
    """A nullable (non-array) struct: INT8 -1 for null, else 1 and the struct (Kafka's
    generated ``readByte() < 0`` rule; ConsumerGroupHeartbeatResponse ``Assignment``)."""

    def __init__(self, inner: KafkaConstruct) -> None:
        super().__init__()
        self.inner = inner

    def read(self, io: Input) -> Any:
        p = io.take(1)
        return None if io.buf[p] >= 0x80 else self.inner.read(io)

    def write(self, io: Any, obj: Any) -> None:
        if obj is None:
            io.write(b"\xff")
        else:
            io.write(b"\x01")
            self.inner.write(io, obj)

    def _emitparse(self, code: Any) -> str:
        fn = f"parse_knull_{code.allocateId()}"
        code.append(f"""
            def {fn}(io, this):
                p = io.take(1)
                return None if io.buf[p] >= 0x80 else {self.inner._compileparse(code)}
        """)
        return f"{fn}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        fn = f"build_knull_{code.allocateId()}"
        code.append(f"""
            def {fn}(obj, io, this):
                if obj is None:
                    io.write(b'\\xff')
                else:
                    io.write(b'\\x01'); {self.inner._compilebuild(code)}
        """)
        return f"{fn}(obj, io, this)"


@dataclass(frozen=True, slots=True)
class Entry:
    """A struct member: ``con`` None ⇒ absent in this version (decodes to ``default``)."""

    name: str
    con: KafkaConstruct | None
    default: Any
    tag: int | None = None


class KafkaStruct(KafkaConstruct):
    """A Kafka struct at one version: entries in schema order, plus a tag buffer if flexible."""

    def __init__(self, entries: list[Entry], flexible: bool, top: bool = False) -> None:
        super().__init__()
        self.entries = entries
        self.flexible = flexible
        self.top = top  # the message itself: compiled code also accepts non-`Input` streams
        self.fields: list[Wired] = [
            Wired(e.name, e.con, e.default) for e in entries if e.con is not None and e.tag is None
        ]
        self.tagged: list[Wired] = sorted(
            (Wired(e.name, e.con, e.default, e.tag) for e in entries
             if e.con is not None and e.tag is not None),
            key=lambda w: w.tag or 0,
        )  # fmt: skip
        self.min_size = sum(w.con.min_size for w in self.fields) + flexible

    # -- interpreted --
    def read(self, io: Input) -> dict[str, Any]:
        wired = {w.name: w.con for w in self.fields}
        out = {}
        for e in self.entries:
            con = wired.get(e.name)
            out[e.name] = con.read(io) if con is not None else _fresh(e.default)
        if self.flexible:
            by_tag = {w.tag: w for w in self.tagged}
            for tag, sub in P.r_tags(io):
                if tag in by_tag:
                    out[by_tag[tag].name] = by_tag[tag].con.read(sub)
        return out

    def write(self, io: Any, obj: Any) -> None:
        get = obj.get
        for w in self.fields:
            w.con.write(io, get(w.name, w.default))
        if self.flexible:
            tags = []
            for w in self.tagged:
                value = get(w.name, w.default)
                if value != w.default:
                    sub = Output()
                    w.con.write(sub, value)
                    tags.append((w.tag or 0, sub))
            P.w_tags(io, tags)

    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        if isinstance(stream, Input):
            return self.read(stream)
        return P.reparse(lambda io, ctx: self.read(io), stream, context)

    # -- compiled --
    def _emitparse(self, code: Any) -> str:
        fn = f"parse_kstruct_{code.allocateId()}"
        _use(code, "ZERO_UUID", "UUID")
        local = {e.name: f"f{i}" for i, e in enumerate(self.entries)}
        lines = ["buf = io.buf"]
        if self.top:
            _use(code, "Input", "reparse")
            lines.insert(0, f"if type(io) is not Input: return reparse({fn}, io, this)")
        for run in _runs(self.fields):
            if run[0].con.fmt:
                fmt = "".join(w.con.fmt or "" for w in run)
                sname = _sname(fmt)
                code.append(f"{sname} = struct.Struct('>{fmt}')")
                targets = "".join(f"{local[w.name]}, " for w in run)
                lines += [f"p = io.pos; io.pos = p + {sname}.size",
                          f"{targets}= {sname}.unpack_from(buf, p)"]  # fmt: skip
            else:
                lines.append(f"{local[run[0].name]} = {run[0].con._compileparse(code)}")
        if self.tagged:
            _use(code, "r_tags")
            lines += [f"{local[w.name]} = {_lit(w.default)}" for w in self.tagged]
            lines.append("for tag, sub in r_tags(io):")
            for w in self.tagged:
                tfn = f"parse_ktag_{code.allocateId()}"
                code.append(f"def {tfn}(io, this):\n    return {w.con._compileparse(code)}")
                lines.append(f"    if tag == {w.tag}: {local[w.name]} = {tfn}(sub, this)")
        elif self.flexible:
            _use(code, "skip_tags")
            lines.append("skip_tags(io)")
        wired = {w.name for w in self.fields} | {w.name for w in self.tagged}
        items = ", ".join(
            f"{e.name!r}: {local[e.name] if e.name in wired else _lit(e.default)}"
            for e in self.entries
        )
        lines.append(f"return {{{items}}}")
        code.append(f"def {fn}(io, this):\n" + "\n".join("    " + x for x in lines))
        return f"{fn}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        fn = f"build_kstruct_{code.allocateId()}"
        _use(code, "ZERO_UUID", "UUID")
        lines = ["d = obj", "get = d.get"]
        for run in _runs(self.fields):
            if run[0].con.fmt:
                fmt = "".join(w.con.fmt or "" for w in run)
                sname = _sname(fmt)
                code.append(f"{sname} = struct.Struct('>{fmt}')")
                args = ", ".join(f"get({w.name!r}, {_lit(w.default)})" for w in run)
                lines.append(f"io.write({sname}.pack({args}))")
            else:
                w = run[0]
                lines.append(f"obj = get({w.name!r}, {_lit(w.default)}); "
                             f"{w.con._compilebuild(code)}")  # fmt: skip
        if self.tagged:
            _use(code, "w_tags", "Output")
            lines.append("tags = []")
            for w in self.tagged:
                tfn = f"build_ktag_{code.allocateId()}"
                code.append(f"def {tfn}(obj, io, this):\n    {w.con._compilebuild(code)}")
                lines += [
                    f"obj = get({w.name!r}, {_lit(w.default)})",
                    f"if obj != {_lit(w.default)}:",
                    f"    out = Output(); {tfn}(obj, out, this); tags.append(({w.tag}, out))",
                ]
            lines.append("w_tags(io, tags)")
        elif self.flexible:
            lines.append("io.write(b'\\x00')")
        lines.append("return d")
        code.append(f"def {fn}(obj, io, this):\n" + "\n".join("    " + x for x in lines))
        return f"{fn}(obj, io, this)"


@dataclass(frozen=True, slots=True)
class Wired:
    """A member that is on the wire in this version (``tag`` set ⇒ in the tag buffer)."""

    name: str
    con: KafkaConstruct
    default: Any
    tag: int | None = None


def _runs(members: list[Wired]) -> list[list[Wired]]:
    """Split into maximal runs of fixed-width scalars; every other member is a run of one."""
    runs: list[list[Wired]] = []
    for w in members:
        if w.con.fmt and runs and runs[-1][0].con.fmt:
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


def _lit(value: Any) -> str:
    """A Python expression that evaluates to a fresh copy of ``value`` in generated code."""
    if isinstance(value, UUID):
        return f"UUID(int={value.int})" if value.int else "ZERO_UUID"
    if isinstance(value, list):
        return "[" + ", ".join(map(_lit, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_lit(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _fresh(value: Any) -> Any:
    """A copy of a mutable default (lists and dicts are never shared between decodes)."""
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    return value
