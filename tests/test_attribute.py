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


def _naive_counts(data: bytes, sigs: Signatures, min_len: int) -> dict[str, dict[str, int]]:
    """Matches per pattern inside the strings, per type."""
    text = [m.group() for m in re.finditer(rb"[\t\x20-\x7e]{%d,}" % min_len, data)]
    return {t.name: {p.decode("latin-1"): sum(len(re.findall(b"(?=" + re.escape(p) + b")", s)) for s in text)
                     for p in t.patterns} for t in sigs.types}


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


# Only '"' starts these patterns: the matching kernel skips to the candidate positions.
QUOTED = Signatures((
    PayloadType("unread", ['"unread_count"', '"uid":']),
    PayloadType("presence", ['"presence"']),
))


@pytest.mark.parametrize("method", ["vote", "join"])
@pytest.mark.parametrize("sigs", [SIGS, QUOTED], ids=["lanes", "root-skip"])
@given(pieces=st.lists(st.sampled_from(PIECES) | st.binary(max_size=12), min_size=1, max_size=40),
       min_len=st.integers(1, 12), window=st.integers(64, 200))
def test_pattern_counts_cover_every_match_in_strings_once_across_windows(sigs, method, pieces, min_len,
                                                                         window):
    # every occurrence inside a string counts once, including the matches carried with
    # a string still open at a window edge (or dropped with a run too short to be one)
    data = b"".join(pieces) or b"\x00"
    a = attribute(data, sigs, min_len=min_len, window=window, method=method)
    assert a.class_bytes == _naive(data, sigs, min_len)
    want = _naive_counts(data, sigs, min_len)
    for r in a.types:
        assert r.pattern_matches == want[r.name]
        assert r.matches == sum(want[r.name].values())


@pytest.mark.parametrize("method", ["vote", "join"])
@given(words=st.lists(st.integers(0, 69), min_size=1, max_size=30), min_len=st.integers(1, 6),
       window=st.integers(64, 150))
def test_more_than_64_types_take_the_general_voter(method, words, min_len, window):
    # the fast voter keeps a string's types in a 64-bit mask; past 64 types the
    # general one runs, with the same rule (priorities repeat: ties are common)
    many = Signatures(tuple(PayloadType(f"t{k}", [f"<{k}>"], priority=k % 3) for k in range(70)))
    data = b"".join(b"<%d>%s" % (k, b" " * (k % 4) if k % 5 else b"\x00") for k in words)
    a = attribute(data, many, min_len=min_len, window=window, method=method)
    assert a.class_bytes == _naive(data, many, min_len)
    want = _naive_counts(data, many, min_len)
    assert {r.name: r.pattern_matches for r in a.types} == want


def test_methods_agree_on_a_generated_arena(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import gen_dump
    from offheap.signatures import builtin

    f = tmp_path / "arena.bin"
    gen_dump.generate(f, 1 << 20, seed=3)
    for sigs in (SIGS, builtin()):
        a, b = (attribute(f, sigs, window=1 << 16, method=m).to_dict() for m in ("vote", "join"))
        assert a == b


def test_unknown_method_is_refused():
    from offheap.errors import InputError
    with pytest.raises(InputError, match="method"):
        attribute(b"text text\x00", SIGS, method="fast")


@pytest.mark.single_impl
def test_string_types_counts_the_matches_inside_strings_like_the_twin():
    from offheap import _scan, _scan_py

    args = (np.array([0, 20], np.uint64), np.array([10, 10], np.uint64),
            np.array([1, 2, 21, 40], np.uint64), np.array([0, 1, 1, 2], np.int32),
            np.array([2, 3, 1], np.int64), np.array([0, 1, 1], np.int64), np.array([0, 0], np.int64))
    got = []
    for mod in (_scan, _scan_py):
        counts = np.zeros(3, np.int64)
        cls, per_type = mod.string_types(*args, counts)
        got.append((cls.tolist(), per_type.tolist(), counts.tolist()))
        with pytest.raises(ValueError):
            mod.string_types(*args, np.zeros(2, np.int64))
    # string 0 holds one match of each type (a tie: the lower type), string 1 one of
    # type 1; the match at 40 lies in no string and is not counted
    assert got[0] == got[1] == ([0, 1], [1, 2], [1, 2, 0])


@pytest.mark.single_impl
def test_vote_strings_refuses_what_it_cannot_vote_on():
    from offheap import _scan, _scan_py

    t = SIGS.pattern_set().tables
    pt = SIGS.pattern_type.astype(np.int64)
    pr = np.array([x.priority for x in SIGS.types], np.int64)
    data = b'{"event":"unread_count"}\x00' * 4
    u = np.uint64
    for mod in (_scan, _scan_py):
        def vote(offs, lens, carry=None, end=len(data), **kw):
            carry = np.zeros(len(pt) + 3, np.int64) if carry is None else carry
            return mod.vote_strings(data, 100, end, np.array(offs, u), np.array(lens, u), t.trans,
                                    t.classes, t.ncls, t.out_ptr, t.out_ids, pt, pr,
                                    np.zeros(len(pt), np.int64), carry, **kw)
        assert vote([100, 125], [24, 24]).tolist() == [0, 0]
        for offs, lens in (([99], [24]), ([100, 110], [24, 24]), ([100], [0]), ([190], [24])):
            with pytest.raises(ValueError):
                vote(offs, lens)
        with pytest.raises(ValueError):     # an open run before the last string
            vote([125], [24], open_run=True, open_start=100)
        with pytest.raises(ValueError):
            vote([100], [24], end=len(data) + 1)
        bad = t.trans.copy()
        bad[bad < 0] = ~bad[bad < 0]        # outputs no longer flagged
        with pytest.raises(ValueError):
            mod.vote_strings(data, 100, len(data), np.array([100], u), np.array([24], u), bad, t.classes,
                             t.ncls, t.out_ptr, t.out_ids, pt, pr, np.zeros(len(pt), np.int64),
                             np.zeros(len(pt) + 3, np.int64))


@given(st.binary(max_size=300), st.sampled_from("sSlbLB"),
       st.lists(st.integers(0, 300), max_size=4))
def test_find_strings_counts_zero_bytes_of_each_range(data, encoding, cuts):
    # the zero class comes from the string kernel's pass (partial 64-byte blocks,
    # ranges cut anywhere, every encoding), equal to counting 0x00 bytes directly
    from offheap import _impl

    k = _impl.kernels()
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    state = np.zeros(4, np.uint64)
    for begin, end in zip(edges, edges[1:]):
        zeros = np.array([7], np.uint64)
        k.find_strings(data, begin, end, end == len(data), 4, encoding, False, 0, state, zeros)
        assert int(zeros[0]) == 7 + data.count(0, begin, end) == 7 + k.count_zero_bytes(data, begin, end)
    with pytest.raises(ValueError):
        k.find_strings(data, 0, len(data), True, 4, encoding, False, 0, np.zeros(4, np.uint64),
                       np.zeros(2, np.uint64))


@pytest.mark.single_impl
def test_template_hash_memo_gives_the_twins_hashes_with_and_without_copies():
    # The kernel answers strings equal to a recent one from a memo, and leaves the
    # memo off while it finds no copies: blocks of copies, of unique strings, of
    # strings equal but for a digit or their length, and empty ones, past the
    # 1024-string checks and the 16384-string pause.
    from offheap import _scan, _scan_py

    def letters(i):  # distinct words of one length: distinct templates
        return bytes(97 + (i // 26 ** k) % 26 for k in range(5))

    rows = []
    for i in range(60_000):
        block = (i // 6000) % 4
        if block == 0:
            rows.append(b'{"event":"unread_count","uid":%d}' % (i % 7))      # copies
        elif block == 1:
            rows.append(b'{"event":"presence","user":"u%d","text":"hi %d"}' % (i, i * 7))
        elif block == 2:
            rows.append([b"", b"x", b'"a b"', b'"a b" ', b"Q" * (i % 40)][i % 5])
        else:  # copies keep the memo on while 3000 same-length strings share its slots
            rows.append(b'{"k":"%s"}' % letters(i) if i % 2 else b'{"typing":true}')
    data = bytearray()
    offs, lens = [], []
    for r in rows:
        offs.append(len(data) + 100)
        lens.append(len(r))
        data += r + b"\x00"
    o, n = np.array(offs, np.uint64), np.array(lens, np.uint64)
    got = _scan.template_hashes(bytes(data), 100, o, n)
    assert got.tolist() == _scan_py.template_hashes(bytes(data), 100, o, n).tolist()
    # and each string alone (no memo state) hashes the same
    pick = np.arange(0, len(rows), 997)
    alone = [_scan.template_hashes(rows[i], offs[i], o[i:i + 1], n[i:i + 1])[0] for i in pick]
    assert got[pick].tolist() == [int(h) for h in alone]


def test_copies_are_typed_once_and_counted_again(monkeypatch):
    # a string that copies an earlier one takes its type and its matches count again;
    # only the first copies are typed, once, weighted by their copies: the same
    # result as typing every string, across windows, for sparse and dense signatures
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_match import PRESENT
    from offheap import _impl
    attribute_module = sys.modules["offheap.attribute"]
    from offheap.signatures import builtin

    rng = np.random.default_rng(8)
    messages = [b'{"event":"unread_count","uid":%d,"count":%d}' % (u, c) for u in range(9) for c in range(3)]
    messages += [b'{"event":"presence","uid":%d,"ts":1700000000}' % u for u in range(7)]
    messages += [b'{"event":"typing","conv":"c-%d"}' % u for u in range(5)] + [b"java/lang/String" * 40]
    weights = rng.random(len(messages)) ** 4      # a few messages make most of the copies
    picks = rng.choice(len(messages), 30000, p=weights / weights.sum())
    parts = []
    for k in picks.tolist():
        parts.append(messages[k])
        parts.append(b"\x00" if rng.random() < 0.9 else rng.bytes(int(rng.integers(1, 40))))
    data = b"".join(parts)
    kernels = _impl.kernels()
    calls = []
    real = kernels.copy_groups

    def spy(reps):
        out = real(reps)
        calls.append((len(reps), len(out[0])))
        return out
    dense = Signatures(tuple(PayloadType(f"p{i}", [p]) for i, p in enumerate(PRESENT)))
    for sigs in (SIGS, builtin(), dense):
        monkeypatch.setattr(kernels, "copy_groups", spy)
        calls.clear()
        got = attribute(data, sigs, window=1 << 18, method="vote").to_dict()
        assert any(firsts * 2 <= n for n, firsts in calls), "no window took the copies path"
        monkeypatch.setattr(attribute_module, "_COPIES_MIN_STRINGS", 1 << 62)
        want = attribute(data, sigs, window=1 << 18, method="vote").to_dict()
        monkeypatch.undo()
        assert got == want
        assert got == attribute(data, sigs, window=1 << 18, method="join").to_dict()
