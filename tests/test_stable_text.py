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


def test_a_revised_stable_word_stands_and_the_prefix_still_grows_past_it() -> None:
    s = StableText()
    s.update("we would lie")
    assert s.update("we would lie to") == ("we would lie to", "we would lie")
    # pocketsphinx now hears "like"; the caller was told "lie" was stable, so "lie" stays, and the words
    # after it that two hypotheses agree on become stable as usual.
    assert s.update("we would like to discuss") == ("we would lie to discuss", "we would lie")
    assert s.update("we would like to discuss the") == ("we would lie to discuss the", "we would lie to discuss")


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


def test_hypotheses_must_agree_over_a_span_of_audio() -> None:
    s = StableText(span_s=0.4)
    assert s.update("we", at_s=0.1) == ("we", "")
    assert s.update("we would", at_s=0.2) == ("we would", "")  # agreed, but over 0.1 s only
    assert s.update("we would like", at_s=0.3)[1] == ""
    assert s.update("we would like to", at_s=0.5) == ("we would like to", "we")  # 0.1 .. 0.5: all say "we"
    assert s.update("we wood like to do", at_s=0.6)[1] == "we"  # "would" not agreed by every one since 0.2
    assert s.update("we would like to do", at_s=1.0)[1] == "we"  # the window 0.6 .. 1.0 still holds "wood"
    assert s.update("we would like to do it", at_s=1.1)[1] == "we"  # 0.7 .. 1.1 reaches back to it too
    assert s.update("we would like to do it now", at_s=1.5)[1] == "we would like to do it"
