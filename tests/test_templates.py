"""Template discovery groups strings that differ only in masked parts, and no others."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from offheap import _impl
from offheap._templates_py import normalize_template
from offheap.signatures import parse_signatures
from offheap.templates import discover_templates, signatures_from_templates, signatures_toml, split_messages

WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
NUMBERS = st.integers(0, 10**12)
HEX = st.binary(min_size=4, max_size=8).map(lambda b: b.hex())


@given(st.lists(st.tuples(WORDS, NUMBERS, HEX), min_size=1, max_size=20))
def test_strings_differing_only_in_masked_parts_share_a_template(rows):
    data = b"".join(b'{"event":"push","uid":%d,"id":"%s-%s"}\x00' % (n, h.encode(), h.encode())
                    for _, n, h in rows)
    tpl = discover_templates([data], min_len=8)
    assert len(tpl) == 1
    assert tpl[0].template == '{"event":"push","uid":#,"id":"#-#"}'
    assert tpl[0].count == len(rows)
    assert tpl[0].bytes == len(data) - len(rows)


@given(st.lists(WORDS, min_size=1, max_size=8, unique=True))
def test_strings_differing_in_fixed_words_are_separated(words):
    data = b"".join(b'{"event":"%s","uid":%d}\x00' % (w.encode(), i) for i, w in enumerate(words))
    tpl = discover_templates([data], min_len=8, top=50)
    # `\w{17,}` words are masked as random ids: those group together
    expected = {normalize_template(b'{"event":"%s","uid":0}' % w.encode()).decode() for w in words}
    assert {t.template for t in tpl} == expected


@given(st.lists(st.binary(max_size=60), max_size=20))
def test_kernel_hash_equals_twin(strings):
    data = b"\x00".join(strings) + b"\x00"
    offs, lens, pos = [], [], 0
    for s in strings:
        offs.append(pos)
        lens.append(len(s))
        pos += len(s) + 1
    o, n = np.array(offs, np.uint64), np.array(lens, np.uint64)
    from offheap import _scan_py
    assert _impl.kernels().template_hashes(data, 0, o, n).tolist() == _scan_py.template_hashes(data, 0, o, n).tolist()
    # equal masked text <=> equal hash (FNV-1a 64: no collisions among a few strings)
    h = _impl.kernels().template_hashes(data, 0, o, n).tolist()
    for i in range(len(strings)):
        for j in range(len(strings)):
            same = normalize_template(strings[i]) == normalize_template(strings[j])
            assert (h[i] == h[j]) == same


def test_free_text_is_masked_and_messages_back_to_back_are_split():
    data = (b'{"t":"msg","preview":"see you soon"}{"t":"msg","preview":"ok then"}\x00'
            b'{"t":"ack","n":1}\x00')
    tpl = discover_templates([data], min_len=8)
    got = {t.template: t.count for t in tpl}
    assert got == {'{"t":"msg","preview":"#"}': 2, '{"t":"ack","n":#}': 1}
    offs = np.array([0], np.uint64)
    lens = np.array([len(data) - 19], np.uint64)
    o, n = split_messages(data, 0, 0, len(data), offs, lens)
    cut = data.index(b"}{") + 1
    assert o.tolist() == [0, cut] and n.tolist() == [cut, len(data) - 19 - cut]


def test_fragments_of_freed_copies_fold_into_their_template_and_signatures_round_trip():
    full = b'{"event":"unread_count","uid":%d,"count":%d}\x00'
    freed = b'_count","uid":%d,"count":%d}\x00'   # malloc overwrote the first 16 bytes
    data = b"".join(full % (i, i) for i in range(50)) + b"".join(freed % (i, i) for i in range(30))
    data += b"".join(b'{"event":"typing","conv":"c-%d"}\x00' % i for i in range(20))
    tpl = discover_templates([data, data], min_len=8)
    assert tpl[0].template == '{"event":"unread_count","uid":#,"count":#}'
    assert tpl[0].count == 160 and tpl[0].dumps == 2
    sigs = signatures_from_templates(tpl, 5)
    text = signatures_toml(sigs)
    again = parse_signatures(text, "discovered.toml")
    assert [t.patterns for t in again.types[-len(sigs.types):]] == [t.patterns for t in sigs.types]
    from offheap.attribute import attribute
    a = attribute(data, sigs, min_len=8)
    assert a.class_bytes[sigs.types[0].name] == sum(len(full % (i, i)) - 1 for i in range(50)) + \
        sum(len(freed % (i, i)) - 1 for i in range(30))


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7), st.integers(1, 300)), max_size=200))
def test_group_keys_with_classes_groups_class_and_template(rows):
    from offheap import _scan_py

    k = _impl.kernels()
    cls = np.array([c for c, _, _ in rows], np.int64)
    # hashes that differ only above bit 48 must still be one template
    keys = np.array([(h * 0x9E3779B97F4A7C15 + (c << 50)) & (2**64 - 1) for c, h, _ in rows], np.uint64)
    lens = np.array([n for _, _, n in rows], np.uint64)
    got = k.group_keys(keys, lens, cls)
    composed = (cls.astype(np.uint64) << np.uint64(48)) | (keys & np.uint64(2**48 - 1))
    want = _scan_py.group_keys(composed, lens)
    for a, b in zip(got, want):
        assert a.tolist() == b.tolist()
    assert len(got[0]) == len({(c, h) for c, h, _ in rows})


def test_group_keys_refuses_classes_it_cannot_pack():
    k = _impl.kernels()
    one = np.ones(1, np.uint64)
    with pytest.raises(ValueError):
        k.group_keys(one, one, np.array([65536], np.int64))
    with pytest.raises(ValueError):
        k.group_keys(one, one, np.array([0, 1], np.int64))
