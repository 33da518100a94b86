"""The simultaneous policy on its own: tokens, agreement, alignment, holdback, pacing, the request budget."""

from __future__ import annotations

import random

import pytest

from tongyeok_server.simultaneous import pacing, source, text
from tongyeok_server.simultaneous.agreement import Agreement, Step
from tongyeok_server.simultaneous.pacing import Latency, RequestBudget

# --------------------------------------------------------------------------- text


def test_tokens_keep_their_spacing_and_split_scripts_without_spaces() -> None:
    assert text.tokens("Nos gustaría  hablar") == ["Nos", " gustaría", "  hablar"]
    assert text.tokens("  leading") == ["leading"]
    assert text.tokens("저희는 다음 주에") == ["저희는", " 다음", " 주에"]
    assert text.tokens("本日は会議") == ["本", "日", "は", "会", "議"]
    assert text.tokens("") == []
    for sample in ("Nos gustaría hablar, hoy.", "저희는 다음 주에 계약하고 싶습니다.", "本日は 会議 OK"):
        assert "".join(text.tokens(sample)) == sample


def test_a_partial_translation_never_ends_the_sentence() -> None:
    assert text.without_sentence_end(text.tokens("We are glad to meet you.")) == text.tokens("We are glad to meet you")
    assert text.without_sentence_end(text.tokens('He said "yes."')) == text.tokens('He said "yes')
    assert text.without_sentence_end(text.tokens("Really?!")) == ["Really"]
    assert text.without_sentence_end(["Yes", " ."]) == ["Yes"]
    assert text.without_sentence_end(text.tokens("감사합니다。")) == text.tokens("감사합니다")
    assert text.without_sentence_end(text.tokens("one, two")) == text.tokens("one, two")


@pytest.mark.parametrize(
    ("committed", "rest", "joined"),
    [
        ("", " Hola", "Hola"),
        ("Nos gustaría", "hablar", "Nos gustaría hablar"),
        ("Nos gustaría", "   hablar", "Nos gustaría hablar"),
        ("Sí", ", claro", "Sí, claro"),
        ("Sí", " , claro", "Sí, claro"),
        ("本日は", "会議です", "本日は会議です"),
        ("저희는", "다음 주에", "저희는 다음 주에"),
        ("Done", "", "Done"),
    ],
)
def test_join_spaces_a_continuation_as_the_script_wants(committed: str, rest: str, joined: str) -> None:
    assert text.join(committed, rest) == joined


@pytest.mark.parametrize(
    ("committed", "complete", "rest"),
    [
        # The whole translation starts with the committed words: the rest follows them.
        ("Nos gustaría", "Nos gustaría hablar del contrato hoy.", " hablar del contrato hoy."),
        # Case and punctuation differ: the same words.
        ("nos gustaría,", "Nos gustaría hablar.", " hablar."),
        # A committed word the whole translation replaced: nothing after it is lost.
        ("El precio incluye la", "El precio incluye entrega y soporte.", " entrega y soporte."),
        # The whole translation words the beginning differently.
        ("We would like", "We'd like to discuss it.", " to discuss it."),
        # Everything is already committed.
        ("Buenos días a todos", "Buenos días a todos.", "."),
        ("", "Hola a todos.", "Hola a todos."),
    ],
)
def test_the_rest_of_a_whole_translation_follows_the_committed_text(committed: str, complete: str, rest: str) -> None:
    agreement = Agreement()
    agreement.commit(committed)
    assert agreement.rest_of(complete) == rest


def test_alignment_prefers_saying_a_word_twice_to_dropping_it() -> None:
    committed = text.tokens("El precio incluye la")
    complete = text.tokens("El precio incluye entrega")
    # "la" against "entrega": as close to drop "la" (j=3) as to take "entrega" for it (j=4).
    assert text.continuation_start(committed, complete) == 3


# --------------------------------------------------------------------------- agreement


def test_local_agreement_commits_what_two_successive_re_translations_share() -> None:
    a = Agreement(2)
    first = a.offer("Nos")
    assert first.committed == "" and first.tentative == "Nos"  # one translation proves nothing
    second = a.offer("Nos gustaría")
    assert second.committed == "Nos" and second.tentative == " gustaría"
    third = a.offer("Nos gustaría hablar del")
    assert third.committed == " gustaría" and third.tentative == " hablar del"
    assert a.committed == "Nos gustaría"
    # A re-translation that changes its mind about the tail commits nothing new.
    fourth = a.offer("Nos gustaría discutir el contrato")
    assert fourth.committed == "" and fourth.tentative == " discutir el contrato"
    assert a.committed == "Nos gustaría"


def test_a_witness_of_the_whole_hypothesis_commits_a_step_sooner() -> None:
    a = Agreement(2)
    # The stable prefix is "we would", the recogniser has heard "we would like to" so far.
    step = a.offer("Nos gustaría", witness="Nos gustaría hablar")
    assert step.committed == "Nos gustaría" and step.tentative == " hablar"  # the witness shows further
    # What the following words change is not committed: "new" waits for its noun.
    a = Agreement(2)
    step = a.offer("las nuevas", witness="las máquinas nuevas")
    assert step.committed == "las" and step.tentative == " máquinas nuevas"
    # With three agreeing passes the witness stands in for the third: the last two prefixes must agree too.
    a = Agreement(3)
    assert a.offer("El", witness="El primer envío").committed == ""
    assert a.offer("El primer", witness="El primer envío llegará").committed == "El"
    assert a.offer("El primer envío", witness="El primer envío llegará a").committed == " primer"


def test_held_re_translations_commit_nothing_until_released_then_what_they_agree_on() -> None:
    # Echo suppression holds commitment while the audio behind the prefix may be the session's own speech.
    a = Agreement(2)
    assert a.offer("Nos", hold=True) == Step("", "Nos")
    assert a.offer("Nos gustaría", hold=True).committed == ""
    assert a.committed == ""
    released = a.release()
    assert released.committed == "Nos" and released.tentative == " gustaría"  # as the last offer would have
    assert a.release().committed == ""  # nothing more to release
    # With a witness (a local engine): the held offer and its witness are what the release agrees on.
    a = Agreement(2)
    assert a.offer("Nos gustaría", witness="Nos gustaría hablar", hold=True).committed == ""
    assert a.release() == Step("Nos gustaría", " hablar")
    assert Agreement(2).release() == Step("", "")  # nothing offered: nothing to release


def test_three_way_agreement_waits_for_a_third_re_translation() -> None:
    a = Agreement(3)
    assert a.offer("We").committed == ""
    assert a.offer("We would").committed == ""
    assert a.offer("We would like").committed == "We"
    assert a.offer("We would like to").committed == " would"


def test_a_re_translation_that_contradicts_committed_text_cannot_retract_it() -> None:
    a = Agreement(2)
    a.offer("We next week")
    a.offer("We next week sign")
    assert a.committed == "We next week"
    # The engine now orders the sentence differently: the committed words stay, only its tail counts.
    step = a.offer("We would like to sign the contract next week")
    assert a.committed.startswith("We next week")
    assert not step.committed
    step = a.offer("We would like to sign the contract next week, if")
    assert a.committed.startswith("We next week")


def test_a_partial_full_stop_is_never_committed_but_the_final_may_end_the_sentence() -> None:
    a = Agreement(2)
    a.offer("Good morning.")
    step = a.offer("Good morning.")
    assert step.committed == "Good morning"
    assert a.commit(a.rest_of("Good morning, everyone.")) == ", everyone."
    assert a.committed == "Good morning, everyone."


def test_commit_spaces_a_streamed_continuation() -> None:
    a = Agreement(2)
    a.offer("Nos gustaría")
    a.offer("Nos gustaría hablar")
    assert a.committed == "Nos gustaría"
    pieces = [a.commit(p) for p in ("hablar", " del", " contrato", ".")]
    assert pieces == [" hablar", " del", " contrato", "."]
    assert a.committed == "Nos gustaría hablar del contrato." == "Nos gustaría" + "".join(pieces)


def test_agreement_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Agreement(0)


@pytest.mark.parametrize("seed", range(40))
def test_committed_text_only_grows_and_adds_up_to_the_complete_translation(seed: int) -> None:
    """Random re-translations (revisions, reorderings, sentence ends): the invariants hold whatever they say."""
    rng = random.Random(seed)
    vocabulary = "we would like to sign the contract next week if possible . , ?".split()  # noqa: SIM905
    final = [rng.choice(vocabulary[:10]) for _ in range(rng.randint(3, 14))]
    a = Agreement(rng.choice((2, 3)))
    sent = ""
    previous = ""
    for n in range(1, len(final) + 1):
        words = list(final[:n])
        for _ in range(rng.randint(0, 2)):  # the engine revises or invents a word here and there
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
        if rng.random() < 0.3:
            words.append(".")
        step = a.offer(" ".join(words))
        sent += step.committed
        assert a.committed == sent
        assert a.committed.startswith(previous)  # never taken back
        previous = a.committed
    whole = " ".join(final) + "."
    sent += a.commit(a.rest_of(whole))
    assert sent == a.committed
    assert a.committed.startswith(previous)
    # The end of the complete translation is there (its last words follow the committed text).
    assert text.key(text.tokens(a.committed)[-1]) == text.key(text.tokens(whole)[-1])


# --------------------------------------------------------------------------- source


def test_the_holdback_keeps_the_last_stable_words_back() -> None:
    assert source.translatable("we would like to sign", 0) == "we would like to sign"
    assert source.translatable("we would like to sign", 2) == "we would like"
    assert source.translatable("we would", 2) == ""
    assert source.translatable("  저희는 다음 주에  ", 1) == "저희는 다음"
    assert source.translatable("本日は会議", 2) == "本日は"
    assert source.unit_count("저희는 다음 주에") == 3


def test_a_glossary_term_is_never_cut_in_two() -> None:
    terms = ["delivery date", "Q3 sales report"]
    assert source.without_open_terms("the delivery", terms) == "the"
    assert source.without_open_terms("the delivery date", terms) == "the delivery date"
    assert source.without_open_terms("our q3 sales", terms) == "our"
    assert source.without_open_terms("our Q3", terms) == "our"
    assert source.without_open_terms("the date", terms) == "the date"
    assert source.without_open_terms("the delivery", []) == "the delivery"


# --------------------------------------------------------------------------- pacing


def test_verb_final_sources_wait_longer_than_svo_ones() -> None:
    ko_en = pacing.pacing("ko-KR", "en", Latency.BALANCED)
    en_ko = pacing.pacing("en-US", "ko", Latency.BALANCED)
    assert ko_en.holdback > en_ko.holdback
    assert (ko_en.holdback, ko_en.agreement) == (1, 2)
    assert (en_ko.holdback, en_ko.agreement) == (0, 2)
    assert pacing.pacing("ko", "en", Latency.LOW).holdback == 0
    accurate = pacing.pacing("ko", "en", Latency.ACCURATE)
    assert (accurate.holdback, accurate.agreement) == (3, 3)


def test_the_operator_moves_the_holdback_per_source_or_direction() -> None:
    overrides = pacing.parse_holdback("ko=3, en-ko=1")
    assert overrides == {("ko", ""): 3, ("en", "ko"): 1}
    assert pacing.pacing("ko-KR", "en-US", Latency.BALANCED, overrides=overrides).holdback == 3
    assert pacing.pacing("en-US", "ko", Latency.BALANCED, overrides=overrides).holdback == 1
    assert pacing.pacing("en-US", "es", Latency.BALANCED, overrides=overrides).holdback == 0
    assert pacing.pacing("en-US", "ko", Latency.LOW, overrides=overrides).holdback == 0
    assert pacing.pacing("ko", "en", Latency.ACCURATE, overrides=overrides).holdback == 5
    for bad in ("ko", "ko=x", "korean=2", "ko-en=100"):
        with pytest.raises(ValueError, match="SOURCE=WORDS"):
            pacing.parse_holdback(bad)
    assert pacing.parse_holdback("") == {}


def test_the_request_budget_fills_with_speech_not_time() -> None:
    budget = RequestBudget(1.5, burst=4.0)
    assert budget.take(opening=True) and budget.take(opening=True)  # a first sentence opens at once
    assert not budget.take(opening=True)  # no speech, no more
    budget.add_speech(0.7)
    assert budget.take(opening=True)  # 1.05 requests earned
    budget.add_speech(1.4)
    assert not budget.take()  # mid-sentence: 2.1 in the bucket, and two stay for the final and the next opening
    budget.add_speech(0.7)
    assert budget.take()
    budget.charge()  # the final goes whatever the balance
    budget.charge()
    budget.charge()
    budget.add_speech(1.0)
    assert not budget.take(opening=True)  # it paid back the finals first
    budget.add_speech(100.0)
    assert all(budget.take(opening=True) for _ in range(4))
    assert not budget.take(opening=True)  # never more than the bucket holds
    assert budget.requests == 11
    unlimited = RequestBudget(0.0)
    assert all(unlimited.take() for _ in range(100))


def test_a_sentence_saves_what_the_next_one_opens_with() -> None:
    """Re-translations at every word of 9 s sentences: each opens with two requests, and the rate holds."""
    budget = RequestBudget(1.5)
    opened_at_once = []
    for _ in range(10):
        made = 0
        first_two_at = []
        for word in range(26):  # 0.35 s a word
            budget.add_speech(0.35)
            if budget.take(opening=made < 2):
                made += 1
                if made <= 2:
                    first_two_at.append(word)
        budget.charge()
        opened_at_once.append(first_two_at == [0, 1])
    assert all(opened_at_once[1:])
    assert budget.requests <= 1.5 * budget.speech_s + 2  # the rate, and the two a session opens with


def test_the_operators_defaults_are_checked_and_shape_every_direction() -> None:
    from tongyeok_server.settings import SettingsError, from_args
    from tongyeok_server.simultaneous.options import ServerDefaults, SimultaneousConfig

    defaults = ServerDefaults.parse("Accurate", "ko=3", 2.0)
    config = SimultaneousConfig.build(None, True, [("ko-KR", "en"), ("en-US", "ko")], defaults, paid_per_request=True)
    assert config.latency is Latency.ACCURATE
    assert config.pacing("ko-KR", "en").holdback == 5 and config.pacing("en-US", "ko").holdback == 2
    assert config.pacing("ko", "en-GB").max_requests_per_speech_s == 2.0
    local = SimultaneousConfig.build(Latency.LOW, False, [("en-US", "es")], defaults, paid_per_request=False)
    assert local.pacing("en-US", "es") == pacing.Pacing(Latency.LOW, 0, 2, 0.0)
    for bad, needle in (
        (("fast", "", 1.5), "--simultaneous-latency"),
        (("low", "ko", 1.5), "--simultaneous-holdback"),
        (("low", "", 0.0), "--simultaneous-request-rate"),
    ):
        with pytest.raises(ValueError, match=needle):
            ServerDefaults.parse(*bad)
    with pytest.raises(SettingsError, match="--simultaneous-holdback 'korean': expected SOURCE=WORDS"):
        from_args(["--simultaneous-holdback", "korean"], environ={})
    with pytest.raises(SettingsError, match="TONGYEOK_SIMULTANEOUS_LATENCY='fast'"):
        from_args([], environ={"TONGYEOK_SIMULTANEOUS_LATENCY": "fast"})
    settings = from_args([], environ={"TONGYEOK_SIMULTANEOUS_LATENCY": "low"}).simultaneous
    assert settings.simultaneous_latency == "low" and settings.simultaneous_request_rate == 1.5
    assert ServerDefaults.from_settings(settings).latency is Latency.LOW


def test_a_word_committed_in_another_form_is_not_said_again() -> None:
    agreement = Agreement()
    agreement.commit("Nosotros")
    assert agreement.rest_of("Nos gustaría hablar del contrato hoy.") == " gustaría hablar del contrato hoy."
    agreement = Agreement()
    agreement.commit("Nos gusta")
    assert agreement.rest_of("Nos gustaría hablar.") == " hablar."
