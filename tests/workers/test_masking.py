"""Secret masking of whole texts, JSON payloads and chunked output."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from nexusmon.util.masking import Masker

SECRET = "nx-secret-42"


def test_every_secret_is_masked_longest_first() -> None:
    masker = Masker(["abc", "abcdef", SECRET])
    assert masker.mask(f"x abcdef y abc z {SECRET}{SECRET}") == "x *** y *** z ******"


def test_empty_secrets_are_ignored_and_no_secrets_mask_nothing() -> None:
    assert Masker(["", "tok"]).mask("a tok b") == "a *** b"
    assert Masker([""]).mask("anything at all") == "anything at all"
    assert Masker([]).mask_value({"k": "v"}) == {"k": "v"}


def test_mask_value_recurses_through_json_payloads() -> None:
    masker = Masker([SECRET])
    payload = {"token": SECRET, "nested": [f"Bearer {SECRET}", 3, None, {SECRET: True}]}
    assert masker.mask_value(payload) == {
        "token": "***",
        "nested": ["Bearer ***", 3, None, {"***": True}],
    }


def test_secret_split_across_chunks_is_masked_at_every_split_point() -> None:
    text = f"before {SECRET} after\n"
    for cut in range(len(text) + 1):
        stream = Masker([SECRET]).stream()
        shown = stream.feed(text[:cut]) + stream.feed(text[cut:]) + stream.flush()
        assert shown == "before *** after\n", cut


def test_plain_output_is_not_held_back() -> None:
    stream = Masker([SECRET]).stream()
    assert stream.feed("hello world\n") == "hello world\n"
    assert stream.feed("ends with nx-sec") == "ends with "
    assert stream.feed("ret-42 done") == "*** done"
    assert stream.flush() == ""


def test_held_back_tail_that_is_not_a_secret_comes_out_on_flush() -> None:
    stream = Masker([SECRET]).stream()
    assert stream.feed("almost nx-se") == "almost "
    assert stream.flush() == "nx-se"


@given(
    pieces=st.lists(st.sampled_from(["a", "b", "ab", "aab", "abba", "\n", "xyz"]), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_streaming_masks_exactly_like_masking_the_whole_text(
    pieces: list[str], cuts: list[int]
) -> None:
    masker = Masker(["aab", "ab", "abba", "bb"])
    text = "".join(pieces)
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    stream = masker.stream()
    shown = "".join(stream.feed(text[a:b]) for a, b in zip(bounds, bounds[1:])) + stream.flush()
    assert shown == masker.mask(text)


def test_short_secrets_leave_mapping_keys_readable() -> None:
    masker = Masker(["x", "hunter2"])
    assert masker.mask_value({"exit_code": "x1", "max": "hunter2", "hunter2": ["x"]}) == {
        "exit_code": "***1", "max": "***", "***": ["***"]}


def test_each_line_of_a_multi_line_secret_is_masked_on_its_own() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQ\n}\n-----END KEY-----\n"
    masker = Masker([pem])
    assert masker.mask(pem) == "***\n"  # whole, and its final newline kept
    assert masker.mask("line 2: MIIEvQIBADANBgkqhkiG9w0BAQ.") == "line 2: ***."
    assert masker.mask("-----END KEY-----") == "***"
    assert masker.mask("{ json }") == "{ json }"  # a line this short is not a secret on its own
    stream = masker.stream()
    assert stream.feed("key MIIEvQIBA") + stream.feed("DANBgkqhkiG9w0BAQ\n") + stream.flush() == "key ***\n"


def test_a_secret_ending_in_a_newline_leaves_the_newline() -> None:
    assert Masker(["tok-123\n"]).mask("token tok-123\nnext") == "token ***\nnext"


def test_a_secret_is_masked_as_json_and_repr_write_it_too() -> None:
    secret = 'p\\a"ss\nw\u00f6rd'  # backslash, quote, newline, non-ASCII
    masker = Masker([secret])
    assert masker.mask(json.dumps({"token": secret})) == '{"token": "***"}'
    assert masker.mask(f"got {secret!r}") == "got '***'"
    assert masker.mask(f"got {secret!a}") == "got '***'"
    assert masker.mask(secret) == "***"
    assert Masker(["plain-token"]).secrets == ("plain-token",)  # nothing to escape: one pattern
