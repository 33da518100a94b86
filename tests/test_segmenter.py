"""The clause segmenter: speech starts at the first sentence or clause boundary of the streamed tokens."""

from __future__ import annotations

import pytest

from tongyeok_server.synthesis.segmenter import MAX_CLAUSE_CHARS, ClauseSegmenter, weighted_length


def cut(tokens: list[str]) -> tuple[list[str], list[str]]:
    """(clauses given out while tokens arrived, clauses given at finish)."""
    seg = ClauseSegmenter()
    early = [c for t in tokens for c in seg.add(t)]
    return early, seg.finish()


def words(text: str) -> list[str]:
    return [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]


def test_a_sentence_is_given_out_as_soon_as_the_next_word_starts() -> None:
    seg = ClauseSegmenter()
    assert seg.add("Good") == []
    assert seg.add(" morning") == []
    assert seg.add(" everyone.") == []  # "everyone.5"? undecided until the next character
    assert seg.add(" We") == ["Good morning everyone."]
    assert seg.finish() == ["We"]


def test_clause_boundaries_need_a_minimum_length() -> None:
    early, rest = cut(words("Well, we would like to discuss the contract today, and the delivery date."))
    # "Well," is too short to be spoken alone; the comma after "today" is far enough in.
    assert early == ["Well, we would like to discuss the contract today,"]
    assert rest == ["and the delivery date."]


def test_abbreviations_numbers_and_initials_do_not_end_sentences() -> None:
    early, rest = cut(list("Dr. Smith paid 3.5 dollars to J. Kim on Friday. The price is 1,000 won, e.g. cheap."))
    assert early == ["Dr. Smith paid 3.5 dollars to J. Kim on Friday."]
    assert rest == ["The price is 1,000 won, e.g. cheap."]


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    early, rest = cut(['"Is it ready?"', " she", " asked", " (twice).", " Yes."])
    assert early == ['"Is it ready?"', "she asked (twice)."]
    assert rest == ["Yes."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Korean: Latin punctuation, and no space is needed after a period that follows Hangul.
        (
            "안녕하세요.만나서 반갑습니다. 오늘 회의에 와 주셔서 감사합니다, 그리고 제안서를 검토해 주시기 바랍니다.",
            [
                "안녕하세요.",
                "만나서 반갑습니다.",
                "오늘 회의에 와 주셔서 감사합니다,",
                "그리고 제안서를 검토해 주시기 바랍니다.",
            ],
        ),
        # Japanese and Chinese full stops and commas need no space.
        ("本日はありがとうございます。資料を確認しました、来週までにお返事します！", None),
        ("谢谢大家。我们今天想讨论合同，以及下周五的交货日期。", None),
    ],
)
def test_cjk_and_korean_sentence_endings(text: str, expected: list[str] | None) -> None:
    early, rest = cut(list(text))
    clauses = early + rest
    assert "".join(clauses).replace(" ", "") == text.replace(" ", "")
    if expected is not None:
        assert clauses == expected
    else:
        assert len(clauses) >= 2
        assert all(c[-1] in "。！？，、" for c in clauses)
    assert len(early) >= len(clauses) - 1  # only the last waits for the end


def test_wide_characters_count_double() -> None:
    assert weighted_length("감사합니다") == 10
    assert weighted_length("thank you") == 8


def test_text_without_punctuation_is_cut_at_a_space_once_too_long() -> None:
    text = " ".join(["word"] * 100)
    early, rest = cut(words(text))
    assert early, "a long unpunctuated translation must be spoken before it ends"
    assert all(weighted_length(c) <= MAX_CLAUSE_CHARS for c in early)
    assert " ".join(early + rest) == text


def test_nothing_is_lost_or_duplicated() -> None:
    text = "Thank you. As I said, the shipment left on Monday; it should arrive by Friday... Right? Great!"
    for tokens in (list(text), words(text), [text]):
        early, rest = cut(tokens)
        assert " ".join(early + rest) == text
