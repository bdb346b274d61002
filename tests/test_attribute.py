"""Attribution: every byte in exactly one class, strings typed by the documented rule."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, strategies as st

from offheap.attribute import BINARY, OTHER_TEXT, ZERO, attribute
from offheap.signatures import PayloadType, Signatures

SIGS = Signatures((
    PayloadType("unread", ['"unread_count"', '_count","uid":']),
    PayloadType("presence", ['"presence"']),
    PayloadType("generic-json", ['{"', '":'], priority=10),
))


def _naive(data: bytes, sigs: Signatures, min_len: int) -> dict[str, int]:
    """The rule, stated directly: regex for strings, str.find for matches."""
    out = {t.name: 0 for t in sigs.types}
    out.update({OTHER_TEXT: 0, ZERO: 0, BINARY: 0})
    covered = 0
    for m in re.finditer(rb"[\t\x20-\x7e]{%d,}" % min_len, data):
        s = m.group()
        best = None
        for k, t in enumerate(sigs.types):
            n = sum(len(re.findall(b"(?=" + re.escape(p) + b")", s)) for p in t.patterns)
            if n:
                key = (t.priority, n, -k)
                if best is None or key > best[0]:
                    best = (key, t.name)
        out[best[1] if best else OTHER_TEXT] += len(s)
        covered += len(s)
    out[ZERO] = data.count(0)
    out[BINARY] = len(data) - covered - out[ZERO]
    return out


PIECES = [b'{"event":"unread_count","uid":42,"count":3}', b'_count","uid":7,"count":1}',
          b'{"event":"presence","uid":1,"status":"online"}', b'{"other":"json"}', b"plain text here",
          b'x"presence"y"unread_count"', b"\x00" * 7, b"\x01\x02\xff\x80", b"\x7f", b"\t tabbed \t"]


@given(st.lists(st.sampled_from(PIECES) | st.binary(max_size=12), min_size=1, max_size=40),
       st.integers(1, 12), st.integers(64, 200))
def test_partition_sums_to_size_and_equals_naive_rule(pieces, min_len, window):
    data = b"".join(pieces) or b"\x00"
    a = attribute(data, SIGS, min_len=min_len, window=window)
    assert sum(a.class_bytes.values()) == len(data) == a.size
    assert all(v >= 0 for v in a.class_bytes.values())
    assert a.class_bytes == _naive(data, SIGS, min_len)


def test_reports_types_templates_examples_and_addresses(tmp_path):
    data = (b"\x00" * 16 + b'{"event":"unread_count","uid":1001,"count":5}' + b"\x00\x01" * 8
            + b'{"event":"unread_count","uid":2,"count":17}' + b"\x00" * 9
            + b'{"event":"presence","uid":3,"status":"away"}' + b"\xff" * 5
            + b'_count","uid":99,"count":1}\x00')
    f = tmp_path / "arena.dump"
    f.write_bytes(data)
    a = attribute(f, SIGS, min_len=8, base_address=0x7F0000000000)
    unread = next(t for t in a.types if t.name == "unread")
    assert unread.strings == 3
    assert unread.bytes == 45 + 43 + 27
    assert unread.example_offsets == [16, 16 + 45 + 16, data.rindex(b'_count"')]
    assert unread.example_addresses[0] == 0x7F0000000000 + 16
    assert unread.pattern_matches == {'"unread_count"': 2, '_count","uid":': 3}
    assert unread.templates[0].template == '{"event":"unread_count","uid":#,"count":#}'
    assert unread.templates[0].count == 2
    assert unread.templates[0].example_address == 0x7F0000000000 + 16
    presence = next(t for t in a.types if t.name == "presence")
    assert presence.bytes == 44 and presence.strings == 1
    assert a.types[0].name == "unread"            # sorted by bytes
    d = a.to_dict()
    assert d["class_bytes"]["unread"] == 115 and d["size"] == len(data)


def test_priority_then_votes_settle_strings_matching_several_types():
    both = b'{"event":"presence","x":"unread_count"}'
    a = attribute(both + b"\x00", SIGS, min_len=4)
    # same priority (user types), one match each: the first listed type wins
    assert a.class_bytes["unread"] == len(both)
    twice = b'"presence" "presence" "unread_count"'
    a = attribute(twice + b"\x00", SIGS, min_len=4)
    assert a.class_bytes["presence"] == len(twice)
    generic = b'{"k": "v"}'
    a = attribute(generic + b"\x00", SIGS, min_len=4)
    assert a.class_bytes["generic-json"] == len(generic)


def test_strings_across_window_edges_keep_their_matches():
    filler = b"\x01" * 100
    msg = b'{"event":"unread_count","uid":1,"count":2,"pad":"' + b"p" * 300 + b'"}'
    data = filler + msg + b"\x00" + filler
    for window in (64, 128, 200, 4096):
        a = attribute(data, SIGS, min_len=8, window=window)
        assert a.class_bytes["unread"] == len(msg), window


def test_keep_strings_gives_every_string_with_its_class():
    data = b'{"event":"unread_count"}\x00plain text\x00{"event":"presence"}\x00' * 3
    a = attribute(data, SIGS, min_len=8, keep_strings=True, window=64)
    names = [t.name for t in SIGS.types] + [OTHER_TEXT]
    got = [(int(o), int(n), names[c]) for o, n, c in zip(a.string_offsets, a.string_lengths, a.string_classes)]
    want = []
    for m in re.finditer(rb"[\t\x20-\x7e]{8,}", data):
        kind = "unread" if b"unread" in m.group() else "presence" if b"presence" in m.group() else OTHER_TEXT
        want.append((m.start(), len(m.group()), kind))
    assert got == want
    assert attribute(data, SIGS, min_len=8).string_offsets is None
