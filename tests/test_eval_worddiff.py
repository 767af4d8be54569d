"""The word-level diff the cell view colours."""

from workbench.eval.worddiff import similarity, tokens, word_diff


def test_tokens_join_back_to_the_text():
    text = 'He said: "refund it", twice.\n  Now!'
    assert "".join(tokens(text)) == text


def test_a_changed_word_shows_as_missing_then_added():
    segments = word_diff('{"issue":"refund","urgency":"low"}', '{"issue":"billing","urgency":"low"}')
    assert ("missing", "refund") in segments and ("added", "billing") in segments
    assert "".join(t for op, t in segments if op != "missing") == '{"issue":"billing","urgency":"low"}'


def test_identical_and_rewrapped_texts_have_no_changes():
    assert word_diff("a b c", "a b c") == [("same", "a b c")]
    assert all(op == "same" for op, _ in word_diff("one two three", "one\ntwo   three"))


def test_similarity():
    assert similarity("a b c d", "a b c d") == 1.0
    assert similarity("a b c d", "a b x d") == 0.75
    assert similarity("", "") == 1.0
