"""The parts of Whisper streaming that need no model: the stable-prefix policy and the VAD segmenter."""

from __future__ import annotations

import numpy as np

from tests.support.speech import Speech
from tongyeok_server.recognition.stable_prefix import LocalAgreement, interim_text
from tongyeok_server.recognition.vad import SAMPLE_RATE_HZ, Segmenter, SpeechEnded, SpeechStarted
from tongyeok_server.recognition.whisper_decoder import repeated_run, without_repeats


def shown(policy: LocalAgreement, hypothesis: str) -> tuple[str, str] | None:
    interim = policy.update(hypothesis)
    return None if interim is None else (interim.text, interim.stable)


def test_a_pass_shows_its_words_and_two_passes_make_them_stable() -> None:
    policy = LocalAgreement()
    assert shown(policy, "We") == ("We", "")  # shown at once, stable once a second pass agrees
    assert shown(policy, "We would") == ("We would", "We")
    assert shown(policy, "We would like to do") == ("We would like to do", "We would")
    assert shown(policy, "We would like to discuss the") == ("We would like to discuss the", "We would like to")
    assert policy.prefix == "We would like to"
    assert shown(policy, "We would like to discuss the contract.") == (
        "We would like to discuss the contract",
        "We would like to discuss the",
    )


def test_punctuation_and_case_do_not_break_agreement_and_the_end_is_left_open() -> None:
    policy = LocalAgreement()
    policy.update("Good morning.")
    assert shown(policy, "good morning, everyone") == ("good morning, everyone", "good morning")
    assert interim_text(["Thank", "you."]) == "Thank you"


def test_stable_words_are_never_taken_back_and_nothing_repeats() -> None:
    policy = LocalAgreement()
    policy.update("The delivery date")
    assert shown(policy, "The delivery date is") == ("The delivery date is", "The delivery date")
    assert shown(policy, "The delivery") == ("The delivery date", "The delivery date")  # a shorter pass
    assert shown(policy, "The delivery date") is None  # nothing new to show


def test_committed_words_stay_when_later_passes_hear_them_otherwise() -> None:
    policy = LocalAgreement()
    policy.update("Our Dean will")
    assert shown(policy, "Our Dean will visit") == ("Our Dean will visit", "Our Dean will")
    policy.update("Our team will visit your")
    assert shown(policy, "Our team will visit your office") == (
        "Our Dean will visit your office",
        "Our Dean will visit your",
    )


def test_a_pause_does_not_commit_the_end_of_a_sentence() -> None:
    # Two passes over "Thank you for coming" (a pause) both end it with a full stop; the speaker
    # goes on with "to our office today". Committed with its stop, it would end the sentence.
    policy = LocalAgreement()
    policy.update("Thank you for coming.")
    assert shown(policy, "Thank you for coming.") == ("Thank you for coming", "Thank you for coming")
    assert policy.prefix == "Thank you for coming"
    assert shown(policy, "Thank you for coming to our office") == (
        "Thank you for coming to our office",
        "Thank you for coming",
    )


def test_stability_grows_with_the_share_of_stable_words() -> None:
    policy = LocalAgreement()
    first = policy.update("Thank you for")
    second = policy.update("Thank you for your time")
    assert first is not None and second is not None
    assert 0.0 < first.stability < second.stability <= 0.9


def segment(pcm: bytes, chunk: int = 3200) -> list[SpeechStarted | SpeechEnded]:
    segmenter = Segmenter()
    events: list[SpeechStarted | SpeechEnded] = []
    for i in range(0, len(pcm), chunk):
        events += segmenter.feed(pcm[i : i + chunk])
    return events + segmenter.flush()


def test_segmenter_finds_each_sentence_with_its_preroll(speech: Speech) -> None:
    events = segment(speech.pcm())
    ends = [e for e in events if isinstance(e, SpeechEnded)]
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * len(speech.sentences)
    samples = np.frombuffer(speech.pcm(), dtype="<i2")
    for ended, sentence_end in zip(ends, speech.sentence_end_s, strict=True):
        assert abs(ended.end_sample / SAMPLE_RATE_HZ - sentence_end) < 0.4
        # The utterance's audio is the stream's audio from its start on, pre-roll included (quiet at first).
        head = np.frombuffer(ended.audio[:3200], dtype="<i2")
        assert np.array_equal(head, samples[ended.start_sample : ended.start_sample + len(head)])
        assert np.abs(head[:800]).max() < np.abs(np.frombuffer(ended.audio, dtype="<i2")).max() / 4


def test_segmenter_cuts_the_same_way_whatever_the_chunk_size(speech: Speech) -> None:
    def cuts(chunk: int) -> list[tuple[int, int]]:
        return [(e.start_sample, e.end_sample) for e in segment(speech.pcm(), chunk) if isinstance(e, SpeechEnded)]

    assert cuts(3200) == cuts(480) == cuts(7777 * 2)


def test_an_utterance_open_at_the_end_of_the_stream_ends_there(speech: Speech) -> None:
    pcm = speech.pcm()
    cut = int((speech.sentence_end_s[0] - 0.3) * SAMPLE_RATE_HZ) * 2
    events = segment(pcm[:cut])
    assert isinstance(events[-1], SpeechEnded) and events[-1].end_sample == cut // 2


def test_silence_is_not_speech() -> None:
    assert segment(bytes(SAMPLE_RATE_HZ * 2 * 3)) == []


def test_segmenter_knows_how_long_an_open_utterance_has_been_quiet(speech: Speech) -> None:
    pcm = speech.pcm()
    segmenter = Segmenter()
    end = int(speech.sentence_end_s[0] * SAMPLE_RATE_HZ) * 2
    segmenter.feed(pcm[:end])
    assert segmenter.in_speech and segmenter.quiet_s < 0.2
    events = segmenter.feed(bytes(int(0.3 * SAMPLE_RATE_HZ) * 2))
    assert not events and segmenter.in_speech and 0.25 <= segmenter.quiet_s <= 0.45
    (ended,) = segmenter.feed(bytes(int(0.3 * SAMPLE_RATE_HZ) * 2))
    assert isinstance(ended, SpeechEnded) and ended.voiced_until == ended.end_sample
    assert segmenter.quiet_s == 0.0


def test_a_sentence_the_decoder_said_twice_is_said_once() -> None:
    # Seen in a full test run: Whisper on a 5-s context gave "... in March. Our team will ... in March."
    twice = "Our team will visit your office in March. Our team will visit your office in March."
    assert repeated_run(twice) == (0, 8)
    assert without_repeats(twice) == "Our team will visit your office in March."
    assert without_repeats("Thank you. Could you repeat, could you repeat the last number please?") == (
        "Thank you. Could you repeat, the last number please?"
    )


def test_what_people_repeat_is_left_alone() -> None:
    for said in ("very very good", "I think, I think we agree.", "no, no, no.", "Good morning everyone."):
        assert repeated_run(said) is None and without_repeats(said) == said
