"""``stable_text`` for engines that say what is stable (Google) and for those that do not (pocketsphinx)."""

from __future__ import annotations

import itertools

from tongyeok_server.recognition.stable_text import StableText


def test_successive_hypotheses_agree_on_a_growing_stable_prefix() -> None:
    s = StableText()
    assert s.update("we") == ("we", "")  # one hypothesis proves nothing
    assert s.update("we would") == ("we would", "we")
    assert s.update("we would like") == ("we would like", "we would")
    assert s.update("we wood like to") == ("we would like to", "we would")  # revised under the stable words
    assert s.update("we would like to") == ("we would like to", "we would")  # the pass before said "wood"
    assert s.update("we would like to") == ("we would like to", "we would like to")  # heard again: stable
    s.reset()
    assert s.update("thank you") == ("thank you", "")


def test_the_engines_own_stable_prefix_is_taken_and_never_shrinks() -> None:
    s = StableText()
    assert s.update("to be a", stable="") == ("to be a", "")
    assert s.update("to be or not to be", stable="to be") == ("to be or not to be", "to be")
    # A stable result that does not continue the stable words is not taken; the text follows them.
    assert s.update("to bee or not", stable="to bee") == ("to be or not", "to be")
    # Shorter: the stable words stand.
    assert s.update("to", stable="") == ("to be", "to be")
    assert s.update("To be, or not to be", stable="To be, or not") == ("To be, or not to be", "To be, or not")


def test_the_text_always_starts_with_the_stable_text() -> None:
    s = StableText()
    hypotheses = ["a", "a b", "a c", "a c d", "x y z", "a c d e", "a c", "a c d e f"]
    stables: list[str] = []
    for h in hypotheses:
        text, stable = s.update(h)
        assert text.startswith(stable)
        stables.append(stable)
    assert all(b.startswith(a) for a, b in itertools.pairwise(stables)), stables
