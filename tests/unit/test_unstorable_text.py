"""The check for text no store can hold clears clean commands through msgspec's encoder
and walks only the others; both ways must find the same fields, whatever the text.

What the fast way relies on is msgspec's behaviour, not ours: its JSON encoder refuses
any surrogate code point and writes NUL as ``\\u0000``. The properties below hold that
against the walk over every string a command can carry (struct fields, tuples, sets,
dict keys and values), with text drawn from the code points that matter.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from programledger.domain._checks import _unstorable_fields, unstorable_text

_text = st.text(
    st.sampled_from(["a", "\x00", "\\", "u", "0", "\ud800", "\udfff", "\ud83d", "\ude00", "é"])
    | st.characters(),
    max_size=8,
)


class _Inner(msgspec.Struct, frozen=True):
    label: str
    tags: frozenset[str] = frozenset()


class _Command(msgspec.Struct, frozen=True):
    name: str
    lines: tuple[str, ...]
    notes: dict[str, str]
    inner: _Inner | None = None


_commands = st.builds(
    _Command,
    name=_text,
    lines=st.lists(_text, max_size=3).map(tuple),
    notes=st.dictionaries(_text, _text, max_size=3),
    inner=st.none() | st.builds(_Inner, label=_text, tags=st.frozensets(_text, max_size=3)),
)


@settings(max_examples=400, deadline=None)
@given(_commands)
def test_the_fast_check_finds_what_the_walk_finds(command: _Command) -> None:
    assert unstorable_text(command) == list(_unstorable_fields(command, ""))


@given(_text)
def test_msgspec_refuses_every_surrogate_and_escapes_nul(text: str) -> None:
    has_surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    try:
        encoded = msgspec.json.encode(text)
    except UnicodeEncodeError:
        assert has_surrogate
        return
    assert not has_surrogate
    assert ("\x00" in text) == (b"\\u0000" in encoded.replace(b"\\\\", b""))


def test_a_surrogate_pair_is_refused_like_a_lone_half() -> None:
    # Python keeps a pair as two code points, which UTF-8 cannot encode either.
    command = _Command(name="ok", lines=("\ud83d\ude00",), notes={})
    assert [i.path for i in unstorable_text(command)] == ["lines.0"]


def test_text_that_only_spells_an_escape_is_stored() -> None:
    command = _Command(name="C:\\u0000", lines=(), notes={"\\u0000": "x"})
    assert unstorable_text(command) == []


def test_nul_in_a_key_and_a_set_are_named() -> None:
    command = _Command(
        name="ok",
        lines=(),
        notes={"k\x00": "v"},
        inner=_Inner(label="ok", tags=frozenset({"t\x00"})),
    )
    assert sorted(i.path for i in unstorable_text(command)) == ["inner.tags.0", "notes.k\x00"]


def test_a_value_json_cannot_encode_is_walked() -> None:
    assert unstorable_text({"when": object(), "what": "a\x00"}) == list(
        _unstorable_fields({"when": object(), "what": "a\x00"}, "")
    )
    assert [i.path for i in unstorable_text({1: "a\x00"})] == ["1"]
