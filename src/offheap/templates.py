"""Template discovery: what fills a dump when the user has no signatures yet.

Strings are grouped into templates by masking their variable parts (numbers, hex ids,
UUIDs, timestamps, free text: ``normalize_template``) and by splitting messages that
sit back to back in one run (``}{``); pieces of freed copies fold into their template,
and templates opening with the same long literal (the same event with different
enumerated values) fold into one. Templates are ranked by the bytes they cover, over one or
many dumps; ``signatures_from_templates`` turns the top ones into payload types (each
keyed by the literal fragments only it has) so ``attribute`` can use them, and
``signatures_toml`` writes them as a signatures file to edit.

>>> tpl = discover_templates([b'{"uid":1}\\x00{"uid":22}\\x00{"x":true}\\x00'], min_len=6)
>>> [(t.template, t.count) for t in tpl]
[('{"uid":#}', 2), ('{"x":true}', 1)]
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from . import _impl
from ._templates_py import normalize_template
from .attribute import DEFAULT_MIN_LEN, TemplateCounter, _hash_read_back, _Reader
from .errors import InputError
from .scan import DEFAULT_WINDOW, Source, _check_size, _is_path, _source_size, check_options, windows
from .signatures import PayloadType, Signatures

__all__ = ["Template", "discover_templates", "split_messages", "signatures_from_templates",
           "signatures_toml"]

# Two messages written back to back (websocket frames in one buffer) meet at "}{".
_MESSAGE_BOUNDARY = re.compile(rb"\}\{")
MIN_FRAGMENT = 6
MIN_PREFIX = 16


@dataclass
class Template:
    """A group of strings that differ only in masked parts."""

    template: str          # masked text (latin-1 decoded), '#' for variable parts
    count: int             # strings (or messages) in the group
    bytes: int             # bytes they cover
    dumps: int             # in how many of the scanned dumps it appears
    example: str           # one real string of the group
    example_source: str
    example_offset: int


def split_messages(buf, base: int, begin: int, end: int, offsets: np.ndarray,
                   lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut strings at ``}{`` boundaries found in ``buf[begin:end]``: each message of a
    run of back-to-back JSON messages becomes its own (offset, length)."""
    if not len(offsets):
        return offsets, lengths
    cuts = np.fromiter((m.start() + 1 for m in _MESSAGE_BOUNDARY.finditer(buf, begin, end)),
                       dtype=np.uint64)
    if not len(cuts):
        return offsets, lengths
    cuts += np.uint64(base)
    ends = offsets + lengths
    idx = np.searchsorted(offsets, cuts, side="right") - 1
    ok = idx >= 0
    ok[ok] &= (cuts[ok] > offsets[idx[ok]]) & (cuts[ok] < ends[idx[ok]])
    cuts = cuts[ok]
    starts = np.sort(np.concatenate([offsets, cuts]))
    stops = np.sort(np.concatenate([ends, cuts]))
    return starts, stops - starts


def discover_templates(sources: Iterable[Source], *, min_len: int = DEFAULT_MIN_LEN, top: int = 20,
                       split: bool = True, window: int = DEFAULT_WINDOW) -> list[Template]:
    """The ``top`` templates by bytes over all ``sources`` (paths, bytes or mmaps)."""
    check_options(min_len, "s")
    if top < 1:
        raise InputError(f"top must be >= 1, not {top}")
    sources = list(sources)
    if not sources:
        raise InputError("no dumps to scan")
    counter = TemplateCounter()
    kernels = _impl.kernels()
    for k, source in enumerate(sources):
        label = os.fspath(source) if _is_path(source) else f"buffer {k}"
        _check_size(label, _source_size(source), 1, 1)
        reader = _Reader(source)
        state = np.zeros(4, dtype=np.uint64)
        for w in windows(source, window):
            offs, lens = kernels.find_strings(w.buf, w.begin, w.end, w.final, min_len, "s", False,
                                              w.base, state)
            if not len(offs):
                continue
            if split:
                offs, lens = split_messages(w.buf, w.base, w.begin, w.end, offs, lens)
            hashes = _hashes(kernels, w, offs, lens, reader)
            counter.add(np.full(len(offs), k, np.int64), hashes, offs, lens)
    return _merge_dumps(counter, sources, top)


def _hashes(kernels, w, offs: np.ndarray, lens: np.ndarray, reader: _Reader) -> np.ndarray:
    """Template hashes of a window's strings. The string that began in an earlier
    window (no longer mapped) is read back from the source."""
    if int(offs[0]) >= w.base:
        return kernels.template_hashes(w.buf, w.base, offs, lens)
    hashes = np.empty(len(offs), np.uint64)
    hashes[0] = _hash_read_back(kernels, reader, int(offs[0]), int(lens[0]))
    hashes[1:] = kernels.template_hashes(w.buf, w.base, offs[1:], lens[1:])
    return hashes


def _merge_dumps(counter: TemplateCounter, sources: Sequence[Source], top: int) -> list[Template]:
    if not len(counter.hash):
        return []
    order = np.lexsort((counter.cls, counter.hash))       # by hash, then dump index
    h = counter.hash[order]
    first = np.ones(len(h), bool)
    first[1:] = h[1:] != h[:-1]
    starts = np.flatnonzero(first)
    count = np.add.reduceat(counter.count[order], starts)
    nbytes = np.add.reduceat(counter.nbytes[order], starts)
    dumps = np.diff(np.append(starts, len(h)))
    ex = order[starts]                                    # example from the first dump holding it
    # a pool larger than `top`, so fragments of freed copies can fold into their template
    best = np.argsort(-nbytes, kind="stable")[:top * 5]
    result = []
    for i in best.tolist():
        j = int(ex[i])
        src = sources[int(counter.cls[j])]
        raw = _Reader(src).read(int(counter.ex_off[j]), int(counter.ex_len[j]))
        result.append(Template(
            template=normalize_template(raw).decode("latin-1"), count=int(count[i]),
            bytes=int(nbytes[i]), dumps=int(dumps[i]), example=raw[:400].decode("latin-1"),
            example_source=os.fspath(src) if _is_path(src) else "buffer",
            example_offset=int(counter.ex_off[j])))
    return _merge_by_prefix(_fold_fragments(result))[:top]


def _absorb(home: Template, t: Template) -> None:
    home.count += t.count
    home.bytes += t.bytes
    home.dumps = max(home.dumps, t.dumps)


def _fold_fragments(templates: list[Template]) -> list[Template]:
    """Fold a template that is a piece of a bigger one into it: malloc overwrites the
    first 16 bytes of a freed chunk, so freed copies of ``{"event":"unread_count",…}``
    show up as ``_count","uid":#…``, which is the same payload."""
    kept: list[Template] = []
    for t in sorted(templates, key=lambda t: -len(t.template)):
        home = next((k for k in kept if len(t.template) >= MIN_FRAGMENT and t.template in k.template), None)
        if home is None:
            kept.append(t)
        else:
            _absorb(home, t)
    kept.sort(key=lambda t: -t.bytes)
    return kept


def _merge_by_prefix(templates: list[Template]) -> list[Template]:
    """Fold templates that open with the same long literal into the biggest of them.

    Enumerated values are literals to the masker, so ``{"event":"presence","uid":#,
    "status":"away",…}`` and ``…"status":"online",…`` come out as separate templates;
    as separate types each would keep only its distinguishing fragment and the variants
    left out of the top would fall to a generic type. A shared opening of at least
    MIN_PREFIX bytes (``{"event":"presence","uid":``) names one payload.
    """
    groups: dict[str, Template] = {}
    out = []
    for t in sorted(templates, key=lambda t: -t.bytes):
        prefix = t.template.split("#", 1)[0]
        if len(prefix) < MIN_PREFIX or "#" not in t.template:
            out.append(t)
            continue
        home = groups.get(prefix)
        if home is None:
            groups[prefix] = t
            out.append(t)
        else:
            _absorb(home, t)
    out.sort(key=lambda t: -t.bytes)
    return out


def _fragments(template: str) -> list[str]:
    return [f for f in template.split("#") if len(f) >= MIN_FRAGMENT]


def _type_name(template: str, used: set[str]) -> str:
    name = template if len(template) <= 48 else template[:47] + "…"
    base, n = name, 2
    while name in used:
        name = f"{base} ({n})"
        n += 1
    used.add(name)
    return name


def signatures_from_templates(templates: Sequence[Template], n: int = 10) -> Signatures:
    """Payload types for the top ``n`` templates. Each type's patterns are the literal
    fragments (between masked parts, >= 6 bytes) that no other chosen template has, so
    fragments of freed chunks (their first 16 bytes overwritten) still match; a
    template with no fragment of its own falls back to its longest one."""
    chosen = [t for t in templates if _fragments(t.template)][:n]
    if not chosen:
        raise InputError("no template has a literal fragment long enough to match on")
    used: set[str] = set()
    types = []
    for t in chosen:
        others = [o.template for o in chosen if o is not t]
        frags = _fragments(t.template)
        # a freed copy lost its first 16 bytes: also key on what follows them
        if t.template.startswith(frags[0]) and len(frags[0]) >= 16 + MIN_FRAGMENT:
            frags.append(frags[0][16:])
        own = [f for f in frags if not any(f in o for o in others)]
        patterns = own or [max(frags, key=len)]
        types.append(PayloadType(
            _type_name(t.template, used), sorted(set(patterns)),
            description=f"template {t.template[:200]} ({t.count} strings, {t.bytes} bytes)"))
    return Signatures(tuple(types), "<discovered>")


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\u{c:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def signatures_toml(sigs: Signatures) -> str:
    """A signatures file (see examples/signatures.toml) for ``sigs``, ready to rename
    the types and trim their patterns."""
    lines = ["# Signatures discovered by `offheap templates`: rename the types, trim the",
             "# patterns, and use with `offheap scan --signatures FILE`.",
             'mode = "add"', ""]
    for t in sigs.types:
        lines.append("[[type]]")
        lines.append(f"name = {_toml_string(t.name)}")
        if t.description:
            lines.append(f"description = {_toml_string(t.description)}")
        # signatures files decode backslash escapes in patterns: double real backslashes
        pats = ", ".join(_toml_string(p.decode("latin-1").replace("\\", "\\\\")) for p in t.patterns)
        lines.append(f"patterns = [{pats}]")
        lines.append("")
    return "\n".join(lines)
