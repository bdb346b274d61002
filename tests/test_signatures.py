"""Signature files, built-in recognisers, add/replace, and their errors (with lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from offheap.errors import InputError, ParseError
from offheap.signatures import (BUILTIN_TYPES, PayloadType, Signatures, builtin, decode_pattern, untextual,
                                load_for_cli, load_signatures, parse_hex, parse_signatures)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "signatures.toml"


def write(tmp_path, text, name="sigs.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path, text) -> ParseError:
    path = write(tmp_path, text)
    with pytest.raises(ParseError) as info:
        load_signatures(path)
    err = info.value
    assert err.source == str(path)
    assert str(err).startswith(f"{path}:{err.line}: ")
    assert "\n" not in str(err)
    return err


# -- valid files ------------------------------------------------------------------------

@pytest.mark.single_impl
def test_example_file_loads_and_adds_to_builtins():
    sigs = load_signatures(EXAMPLE)
    assert sigs.names[:len(BUILTIN_TYPES)] == [t.name for t in BUILTIN_TYPES]
    push = sigs.type_named("push-notification")
    assert push.priority == 50
    assert b'"event":"unread_count"' in push.patterns
    assert sigs.type_named("statsd-line").patterns == (b"|c|#", b"|ms|#")
    assert sigs.type_named("tab-separated-records").patterns == (b"\tREC\t",)
    assert untextual(sigs) == []        # the example's patterns can all match


@pytest.mark.single_impl
def test_pattern_to_type_index():
    sigs = parse_signatures('mode = "replace"\n[[type]]\nname = "a"\npatterns = ["x", "y"]\n'
                            '[[type]]\nname = "b"\nhex = "00 01"\npatterns = "z"\n')
    assert sigs.patterns == (b"x", b"y", b"z", b"\x00\x01")
    assert sigs.pattern_type.tolist() == [0, 0, 1, 1]


@pytest.mark.single_impl
def test_replace_mode_drops_builtins(tmp_path):
    sigs = load_signatures(write(tmp_path, 'mode = "replace"\n[[type]]\nname = "only"\npatterns = ["q"]\n'))
    assert sigs.names == ["only"]


@pytest.mark.single_impl
def test_add_mode_type_named_like_builtin_replaces_it_in_place(tmp_path):
    sigs = load_signatures(write(tmp_path, '[[type]]\nname = "json"\npatterns = ["{\\"kind\\":"]\npriority = 99\n'))
    assert sigs.names == builtin().names
    assert sigs.type_named("json").patterns == (b'{"kind":',)
    assert sigs.type_named("json").priority == 99


@pytest.mark.single_impl
def test_python_api_add_and_replace():
    mine = [PayloadType("push", ['"type":"push"'], priority=5)]
    added = Signatures.from_types(mine)
    assert added.names == builtin().names + ["push"]
    assert Signatures.from_types(mine, mode="replace").names == ["push"]
    with pytest.raises(InputError, match="mode"):
        Signatures.from_types(mine, mode="merge")
    with pytest.raises(InputError, match="duplicate"):
        Signatures(tuple(mine * 2))
    with pytest.raises(InputError, match="empty pattern"):
        PayloadType("x", [b""])
    with pytest.raises(InputError, match="no patterns"):
        PayloadType("x", [])


@pytest.mark.single_impl
def test_escapes_and_hex():
    assert decode_pattern(r"\x00\xFFa\n\r\t\0\\é") == b"\x00\xffa\n\r\t\x00\\" + "é".encode()
    assert parse_hex("DE ad\tbe\nef") == b"\xde\xad\xbe\xef"
    assert parse_hex("cafe") == b"\xca\xfe"
    for bad in (r"\x4", r"\xzz", "\\", r"\q"):
        with pytest.raises(ValueError):
            decode_pattern(bad)
    for bad in ("abc", "zz", "   "):
        with pytest.raises(ValueError):
            parse_hex(bad)


@pytest.mark.single_impl
def test_cli_loader(tmp_path):
    assert load_for_cli(None).names == builtin().names
    path = write(tmp_path, '[[type]]\nname = "mine"\npatterns = ["m"]\n')
    assert load_for_cli(str(path)).names == builtin().names + ["mine"]
    assert load_for_cli(str(path), builtins=False).names == ["mine"]
    with pytest.raises(InputError, match="not found"):
        load_for_cli(str(tmp_path / "missing.toml"))
    with pytest.raises(InputError, match="directory"):
        load_for_cli(str(tmp_path))
    with pytest.raises(InputError, match="no signatures"):
        load_for_cli(None, builtins=False)


# -- errors name the file and the line ---------------------------------------------------

@pytest.mark.single_impl
def test_toml_syntax_error_line(tmp_path):
    err = error_of(tmp_path, '# comment\n[[type]]\nname = "a"\npatterns = ["x"\n\n[[type]\n')
    assert "TOML syntax" in str(err)
    assert err.line in (4, 5, 6)
    err = error_of(tmp_path, 'mode = "add"\n[[type]]\nname = \n')
    assert err.line == 3


@pytest.mark.single_impl
def test_empty_pattern_line(tmp_path):
    err = error_of(tmp_path, '[[type]]\nname = "a"\npatterns = [\n  "x",\n  "",\n]\n')
    assert err.line == 5 and "empty pattern" in str(err)
    err = error_of(tmp_path, "[[type]]\nname = 'a'\n\npatterns = ''\n")
    assert err.line == 4


@pytest.mark.single_impl
def test_unknown_keys_line(tmp_path):
    err = error_of(tmp_path, '[[type]]\nname = "a"\npatterns = "x"\ncolour = "red"\n')
    assert err.line == 4 and "unknown key 'colour'" in str(err) and "type 'a'" in str(err)
    err = error_of(tmp_path, '\n\nsignatures = 3\n')
    assert err.line == 3 and "unknown key 'signatures'" in str(err)


@pytest.mark.single_impl
def test_duplicate_type_line(tmp_path):
    text = ('[[type]]\nname = "dup"\npatterns = "x"\n\n'
            '[[type]]\nname = "other"\npatterns = "y"\n\n'
            '[[type]]\n  name = "dup"\npatterns = "z"\n')
    err = error_of(tmp_path, text)
    assert err.line == 10 and "duplicate type 'dup'" in str(err)


@pytest.mark.single_impl
def test_bad_hex_and_bad_escape_lines(tmp_path):
    err = error_of(tmp_path, '[[type]]\nname = "a"\nhex = [\n "de ad",\n "de ax",\n]\n')
    assert err.line == 5 and "not hex" in str(err)
    err = error_of(tmp_path, '[[type]]\nname = "a"\nhex = "abc"\n')
    assert err.line == 3 and "odd number" in str(err)
    err = error_of(tmp_path, "[[type]]\nname = 'a'\npatterns = ['ok', '\\q']\n")
    assert err.line == 3 and "unknown escape" in str(err)


@pytest.mark.single_impl
def test_other_semantic_errors(tmp_path):
    cases = [
        ('mode = "merge"\n', 1, "mode"),
        ('[[type]]\nname = "a"\n', 2, "no patterns"),
        ('[[type]]\npatterns = "x"\n', 1, "'name'"),
        ('[[type]]\nname = "a"\npatterns = "x"\npriority = "high"\n', 4, "priority"),
        ('[[type]]\nname = "a"\npatterns = [1, 2]\n', 3, "list of strings"),
        ('type = "x"\n', 1, "array of tables"),
        ('mode = "replace"\n', 1, "no signatures"),
    ]
    for text, line, words in cases:
        err = error_of(tmp_path, text)
        assert (err.line, words in str(err)) == (line, True), (text, str(err))


@pytest.mark.single_impl
def test_not_utf8(tmp_path):
    path = tmp_path / "bin.toml"
    path.write_bytes(b'[[type]]\nname = "a\xff"\n')
    with pytest.raises(ParseError, match=re.escape(f"{path}:2: file is not UTF-8")):
        load_signatures(path)


# -- built-ins find their payloads ---------------------------------------------------------

def test_builtins_recognise_generic_payloads():
    sigs = builtin()
    samples = {
        "json": b'garbage{"event":"unread_count","uid":1}',
        "http": b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n",
        "socket.io": b'42["push",1]',
        "xml": b'<?xml version="1.0"?><a/>',
        "java": b"Ljava/lang/String;",
        "sql": b"SELECT id FROM users",
        "base64": b"data:image/png;base64,iVBOR",
        "url": b"see https://example.com",
    }
    ps = sigs.pattern_set()
    for name, sample in samples.items():
        m = ps.find_all(sample)
        found = {sigs.types[k].name for k in sigs.pattern_type[m.pattern_ids]}
        assert name in found, (name, found)
    noise = bytes(range(0, 32)) * 4
    assert ps.find_all(noise).count == 0


def test_utf16_pattern_set_from_signatures():
    sigs = parse_signatures('mode = "replace"\n[[type]]\nname = "w"\npatterns = "Sec"\n')
    ps = sigs.pattern_set(utf16=True)
    m = ps.find_all("xSecx".encode("utf-16-le"))
    assert ps.base_ids[m.pattern_ids].tolist() == [0] and ps.is_utf16[m.pattern_ids].tolist() == [True]


def test_scan_warns_about_patterns_that_can_never_match(tmp_path):
    from clirun import run_cli

    f = tmp_path / "sigs.toml"
    f.write_text('mode = "replace"\n[[type]]\nname = "rec"\npatterns = [\'\\x00REC\', "REC:"]\n')
    dump = tmp_path / "d.bin"
    dump.write_bytes(b"REC: one two three\x00" * 10)
    r = run_cli("scan", str(dump), "--signatures", str(f))
    err, out = r.stderr.decode(), r.stdout.decode()
    assert r.returncode == 0, err
    assert err.count("warning") == 1
    assert "pattern '\\x00REC' holds byte 0x00" in err and "can never match" in err
    assert "rec" in out
