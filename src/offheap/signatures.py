"""Payload signatures: named types of payload, each recognised by literal byte patterns.

A ``PayloadType`` has a name, one or more patterns and a priority (attribution uses
it to settle a string that matches several types: the higher priority wins). A
``Signatures`` set is what the matcher and attribution consume. It comes from:

- ``builtin()``: generic recognisers needing no file (JSON, HTTP/1.x, socket.io,
  XML, Java names, SQL, base64, URLs);
- a TOML file, ``load_signatures(path)`` (format: ``examples/signatures.toml``),
  whose ``mode = "add"`` (default) adds its types to the built-ins (a type named like
  a built-in replaces it) and ``mode = "replace"`` uses its types alone;
- Python: ``Signatures.from_types([PayloadType("push", [b'"type":"push"'])])``.

Pattern text may use the escapes ``\\xNN`` (one byte), ``\\n``, ``\\r``, ``\\t``,
``\\0`` and ``\\\\``; other characters are encoded as UTF-8. ``hex = "de ad be ef"``
gives raw bytes. Every problem in a file is an ``offheap.errors.ParseError`` whose
message starts with ``FILE:LINE:``.

>>> sigs = parse_signatures('[[type]]\\nname = "push"\\npatterns = [\\'"type":"push"\\']\\n')
>>> [(t.name, t.patterns) for t in sigs.types][-1]
('push', (b'"type":"push"',))
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .errors import InputError, ParseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MODES = ("add", "replace")
TOP_KEYS = {"mode", "type"}
TYPE_KEYS = {"name", "patterns", "hex", "priority", "description"}
# A type the user defines outranks every built-in (those use 10..40): the user's
# `"event":"unread_count"` must win over the generic JSON recogniser in the same string.
DEFAULT_PRIORITY = 100


@dataclass(frozen=True)
class PayloadType:
    """One payload type: ``name``, literal byte ``patterns``, ``priority`` (higher wins).

    >>> PayloadType("push", ['"type":"push"', b"\\x00push"]).patterns
    (b'"type":"push"', b'\\x00push')
    """

    name: str
    patterns: tuple[bytes, ...]
    priority: int = 100
    description: str = ""

    def __init__(self, name: str, patterns: Iterable[bytes | str], priority: int = DEFAULT_PRIORITY,
                 description: str = ""):
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"payload type name must be a non-empty string, got {name!r}")
        pats = tuple(p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in patterns)
        if not pats:
            raise InputError(f"payload type {name!r} has no patterns")
        for p in pats:
            if not p:
                raise InputError(f"payload type {name!r} has an empty pattern")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InputError(f"payload type {name!r}: priority must be an integer, got {priority!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "patterns", pats)
        object.__setattr__(self, "priority", priority)
        object.__setattr__(self, "description", description)


@dataclass(frozen=True)
class Signatures:
    """An ordered set of payload types with unique names.

    ``patterns`` lists every pattern of every type, in type order;
    ``pattern_type[i]`` is the index in ``types`` of the type owning ``patterns[i]``.
    """

    types: tuple[PayloadType, ...]
    source: str | None = None
    patterns: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    pattern_type: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for t in self.types:
            if t.name in seen:
                raise InputError(f"duplicate payload type {t.name!r}")
            seen.add(t.name)
        pats = [p for t in self.types for p in t.patterns]
        owner = [k for k, t in enumerate(self.types) for _ in t.patterns]
        object.__setattr__(self, "patterns", tuple(pats))
        object.__setattr__(self, "pattern_type", np.array(owner, dtype=np.int32))

    @classmethod
    def from_types(cls, types: Iterable[PayloadType], *, mode: str = "add",
                   base: Signatures | None = None, source: str | None = None) -> Signatures:
        """Combine ``types`` with ``base`` (default: the built-ins) by ``mode``.

        ``"add"``: base types then the new ones; a new type named like a base type
        replaces it in place. ``"replace"``: the new types alone.
        """
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        new = list(types)
        if mode == "replace":
            return cls(tuple(new), source)
        base = builtin() if base is None else base
        by_name = {t.name: t for t in new}
        merged = [by_name.pop(t.name, t) for t in base.types]
        merged += [t for t in new if t.name in by_name]
        return cls(tuple(merged), source)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.types]

    def __len__(self) -> int:
        return len(self.types)

    def type_named(self, name: str) -> PayloadType:
        for t in self.types:
            if t.name == name:
                return t
        raise KeyError(name)

    def pattern_set(self, *, utf16: bool = False):
        """A compiled ``offheap.matching.PatternSet`` of ``patterns`` (ids index ``patterns``).

        Built once per ``Signatures`` and flag, then reused (building 1,000 patterns
        takes ~70 ms; a bulk scan asks once per dump)."""
        from .matching import PatternSet

        cache = self.__dict__.setdefault("_pattern_sets", {})
        if utf16 not in cache:
            cache[utf16] = PatternSet(self.patterns, utf16=utf16)
        return cache[utf16]


# -- built-in generic recognisers ------------------------------------------------------
# Literal fragments that survive in freed chunks too (their first 16 bytes are
# overwritten by malloc, see FACTS.md), hence inner pieces like '":"' and not only
# openings like '{"'. Priorities: the more specific a format, the higher.

BUILTIN_TYPES: tuple[PayloadType, ...] = (
    PayloadType("socket.io", ['42["', '42/', '43["', '451-["', '0{"sid":"', '"sid":"',
                              "EIO=4", "EIO=3", "transport=websocket", "transport=polling",
                              "2probe", "3probe"], priority=40,
                description="socket.io / engine.io packets and handshakes"),
    PayloadType("http", ["HTTP/1.1 ", "HTTP/1.0 ", "GET /", "POST /", "PUT /", "DELETE /",
                         "HEAD /", "OPTIONS /", "PATCH /", "Content-Type:", "Content-Length:",
                         "Host: ", "User-Agent:", "Accept:", "Accept-Encoding:", "Connection:",
                         "Cookie:", "Set-Cookie:", "Upgrade: websocket", "Sec-WebSocket-",
                         "content-type:", "content-length:", "user-agent:",
                         "accept-encoding:", "sec-websocket-"], priority=30,
                description="HTTP/1.x request/status lines and header blocks"),
    PayloadType("xml", ["<?xml", "xmlns=", "xmlns:", "<![CDATA[", "</"], priority=25,
                description="XML documents and fragments"),
    PayloadType("sql", ["SELECT ", "INSERT INTO ", "UPDATE ", "DELETE FROM ", " WHERE ",
                        " FROM ", "select ", "insert into ", "delete from ", " where "],
                priority=25, description="SQL statements"),
    PayloadType("java", ["java.", "javax.", "jdk.internal.", "Ljava/", "java/lang/",
                         "java/util/", "Ljdk/", "sun/", "io.netty.", "io/netty/",
                         "org.springframework.", "com.fasterxml."], priority=20,
                description="Java class, package and descriptor names"),
    PayloadType("url", ["http://", "https://", "ws://", "wss://"], priority=15,
                description="URLs"),
    PayloadType("base64", [";base64,", "eyJ", "Basic ", "Bearer "], priority=12,
                description="base64 runs: data URIs, JWT/base64-encoded JSON ('eyJ' = '{\"'), auth headers"),
    PayloadType("json", ['{"', '":"', '","', '":{', '":[', '":', '"}', '"]', ':true', ':false',
                         ':null'], priority=10,
                description="JSON objects and fragments"),
)


_BUILTIN: list[Signatures] = []


def builtin() -> Signatures:
    """The built-in generic recognisers. One shared (immutable) object, so that its
    compiled automaton and the kernels' plans for it are built once per process, not
    once per dump: ``attribute()`` with no signatures asks for it every time."""
    if not _BUILTIN:
        _BUILTIN.append(Signatures(BUILTIN_TYPES, "<builtin>"))
    return _BUILTIN[0]


# -- pattern text ----------------------------------------------------------------------

_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "0": b"\0", "\\": b"\\"}


def decode_pattern(text: str) -> bytes:
    """Pattern text to bytes: ``\\xNN``, ``\\n``, ``\\r``, ``\\t``, ``\\0``, ``\\\\``; UTF-8 otherwise.

    >>> decode_pattern(r'\\x00\\x01{"id":')
    b'\\x00\\x01{"id":'
    """
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            j = text.find("\\", i)
            j = len(text) if j < 0 else j
            out += text[i:j].encode("utf-8")
            i = j
            continue
        if i + 1 >= len(text):
            raise ValueError("pattern ends with a lone backslash (write \\\\ for one)")
        e = text[i + 1]
        if e == "x":
            digits = text[i + 2:i + 4]
            if len(digits) != 2 or not all(d in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError(f"bad escape \\x{digits!s}: \\x takes two hex digits")
            out.append(int(digits, 16))
            i += 4
        elif e in _ESCAPES:
            out += _ESCAPES[e]
            i += 2
        else:
            raise ValueError(f"unknown escape \\{e} (known: \\xNN \\n \\r \\t \\0 \\\\)")
    return bytes(out)


def parse_hex(text: str) -> bytes:
    """``"de ad be ef"`` (whitespace optional) to bytes.

    >>> parse_hex("de ad BE EF")
    b'\\xde\\xad\\xbe\\xef'
    """
    digits = "".join(text.split())
    if not digits:
        raise ValueError("empty hex pattern")
    if len(digits) % 2:
        raise ValueError(f"odd number of hex digits in {text!r}")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ValueError(f"not hex bytes: {text!r}") from None


# -- TOML files ------------------------------------------------------------------------

_TOML_POS = re.compile(r"\s*\(at line (\d+), column \d+\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")
_HEADER = re.compile(r"^\s*\[\[\s*type\s*\]\]")


class _Locator:
    """Finds the line of a semantic problem by searching the file text for its key."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers = [k for k, line in enumerate(self.lines) if _HEADER.match(line)]

    def _block(self, index: int | None) -> tuple[int, int]:
        if index is None or index >= len(self.headers):
            return 0, len(self.lines)
        start = self.headers[index]
        end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines)
        return start, end

    def line(self, index: int | None, key: str | None = None,
             needle: str | tuple[str, ...] | None = None) -> int | None:
        """1-based line of ``key = ...`` in the ``index``-th ``[[type]]`` block, or of
        ``needle`` (any of them) from that key on; the block header (or line 1) otherwise."""
        start, end = self._block(index)
        key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
        at = None
        if key_re is not None:
            at = next((k for k in range(start, end) if key_re.match(self.lines[k])), None)
            if at is None:  # inline tables, dotted keys: any mention of the key
                at = next((k for k in range(len(self.lines)) if key in self.lines[k]), None)
        if needle is not None:
            first = at if at is not None else start
            needles = (needle,) if isinstance(needle, str) else needle
            hit = next((k for k in range(first, end)
                        if any(n in self.lines[k] for n in needles)), None)
            if hit is not None:
                return hit + 1
        if at is not None:
            return at + 1
        if index is not None and index < len(self.headers):
            return self.headers[index] + 1
        return 1 if self.lines else None


def parse_signatures(text: str | bytes, source: str = "<string>", *,
                     base: Signatures | None = None) -> Signatures:
    """Parse signature TOML ``text`` and combine it with ``base`` (default: built-ins).

    ``source`` names the file in error messages.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text[:exc.start].count(b"\n") + 1
            raise ParseError("file is not UTF-8 text", source, line) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        if m:
            raise ParseError(f"TOML syntax: {msg[:m.start()]}", source, int(m.group(1))) from None
        m = _TOML_END.search(msg)
        if m:
            raise ParseError(f"TOML syntax: {msg[:m.start()]} at end of file", source,
                             max(1, len(text.splitlines()))) from None
        raise ParseError(f"TOML syntax: {msg}", source) from None

    loc = _Locator(text)

    def fail(problem: str, index: int | None = None, key: str | None = None,
             needle: str | None = None) -> ParseError:
        return ParseError(problem, source, loc.line(index, key, needle))

    for key in doc:
        if key not in TOP_KEYS:
            raise fail(f"unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS))})", None, key)
    mode = doc.get("mode", "add")
    if mode not in MODES:
        raise fail(f"mode must be \"add\" or \"replace\", got {mode!r}", None, "mode")
    entries = doc.get("type", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise fail("'type' must be an array of tables, written [[type]]", None, "type")
    if mode == "replace" and not entries:
        raise fail("mode = \"replace\" with no [[type]] leaves no signatures", None, "mode")

    types: list[PayloadType] = []
    names: dict[str, int] = {}
    for k, entry in enumerate(entries):
        types.append(_parse_type(entry, k, names, fail))
    return Signatures.from_types(types, mode=mode, base=base, source=source)


def _parse_type(entry: dict, k: int, names: dict[str, int], fail) -> PayloadType:
    """One ``[[type]]`` table (the ``k``-th); ``fail(problem, index, key, needle)``
    builds the ParseError pointing at the line."""
    given = entry.get("name")
    where = f"type {given!r}" if isinstance(given, str) and given.strip() else f"type #{k + 1}"
    for key in entry:
        if key not in TYPE_KEYS:
            raise fail(f"{where}: unknown key {key!r} (known: {', '.join(sorted(TYPE_KEYS))})",
                       k, key)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail(f"type #{k + 1}: 'name' must be a non-empty string", k, "name")
    if name in names:
        raise fail(f"duplicate type {name!r} (first defined as type #{names[name] + 1})", k, "name")
    names[name] = k
    label = f"type {name!r}"

    patterns: list[bytes] = []
    for key, convert in (("patterns", decode_pattern), ("hex", parse_hex)):
        value = entry.get(key, [])
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise fail(f"{label}: '{key}' must be a string or a list of strings", k, key)
        for item in items:
            if item == "":
                raise fail(f"{label}: empty pattern in '{key}'", k, key, needle=('""', "''"))
            try:
                pat = convert(item)
            except ValueError as exc:
                raise fail(f"{label}: {exc}", k, key, needle=item) from None
            if not pat:
                raise fail(f"{label}: pattern {item!r} in '{key}' is empty", k, key, needle=item)
            patterns.append(pat)
    if not patterns:
        raise fail(f"{label} has no patterns: give 'patterns' or 'hex'", k, "name")

    priority = entry.get("priority", DEFAULT_PRIORITY)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise fail(f"{label}: 'priority' must be an integer", k, "priority")
    description = entry.get("description", "")
    if not isinstance(description, str):
        raise fail(f"{label}: 'description' must be a string", k, "description")
    return PayloadType(name, patterns, priority, description)


def load_signatures(path: str | os.PathLike, *, base: Signatures | None = None) -> Signatures:
    """Read a signature TOML file; ``mode`` in the file says add to or replace ``base``.

    Raises ``ParseError`` (``FILE:LINE: problem``) on a bad file and ``InputError``
    if it cannot be read.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InputError(f"{name}: signature file not found") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory, not a signature file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    return parse_signatures(data, name, base=base)


def load_for_cli(path: str | None, *, builtins: bool = True) -> Signatures:
    """What a ``--signatures FILE`` option means: the file combined with the built-ins
    (by the file's ``mode``), or the built-ins alone without a file. ``builtins=False``
    (e.g. ``--no-builtins``) makes the file's types the whole set. Patterns that can
    never match (see ``untextual``) get a warning line on stderr each."""
    base = builtin() if builtins else Signatures((), "<none>")
    if path is None:
        if not builtins:
            raise InputError("no signatures: give a signature file or keep the built-ins")
        return base
    sigs = load_signatures(path, base=base)
    for line in untextual(sigs):
        print(f"offheap: warning: {path}: {line}", file=sys.stderr)
    return sigs


# What a text string is made of: GNU strings' default alphabet (tab and 0x20-0x7e),
# the strings attribution types. A pattern with any other byte lies in no string.
TEXT_BYTES = frozenset(b"\t" + bytes(range(0x20, 0x7F)))


def untextual(sigs: Signatures) -> list[str]:
    """One line per pattern holding a byte no text string holds (a NUL, a newline,
    a UTF-8 or binary byte): matches are counted, and vote, inside strings only, so
    such a pattern can never match.

    >>> print(*untextual(Signatures((PayloadType("rec", [b"\\x00REC", b"REC:"]),))))
    type 'rec': pattern '\\x00REC' holds byte 0x00, which no text string holds: it can never match
    """
    out = []
    for t in sigs.types:
        for p in t.patterns:
            bad = next((b for b in p if b not in TEXT_BYTES), None)
            if bad is not None:
                shown = "".join(chr(b) if b in TEXT_BYTES and b != 0x5C else f"\\x{b:02x}" for b in p)
                out.append(f"type {t.name!r}: pattern '{shown}' holds byte 0x{bad:02x}, "
                           "which no text string holds: it can never match")
    return out


def types_table(sigs: Signatures) -> Sequence[tuple[str, int, int]]:
    """(name, priority, pattern count) per type, for listings."""
    return [(t.name, t.priority, len(t.patterns)) for t in sigs.types]
