"""End to end over a real port: synthesised English speech in, transcripts and Spanish out."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.speech import Speech, convert, word_error_rate
from tongyeok_client.proto import interpreter_pb2 as pb

pytestmark = pytest.mark.speech

CHUNK_S = 0.1


def interpret(stub, request_config: pb.InterpretRequest, data: bytes, bytes_per_second: int) -> list[tuple[str, Any]]:
    chunk = int(bytes_per_second * CHUNK_S)
    requests = itertools.chain([request_config], audio_requests(data, chunk))
    return events_of(stub.Interpret(requests, timeout=120))


@pytest.fixture(scope="module")
def mono_events(offline_server, speech: Speech) -> list[tuple[str, Any]]:
    from tests.conftest import stub_for

    channel, stub = stub_for(offline_server)
    with channel:
        return interpret(stub, config(), speech.pcm(), 32000)


def test_one_final_per_sentence_with_low_word_error_rate(mono_events, speech: Speech) -> None:
    finals = of_kind(mono_events, "final_transcript")
    assert [f.utterance_id for f in finals] == [1, 2, 3, 4]
    wer = word_error_rate(" ".join(speech.sentences), " ".join(f.text for f in finals))
    assert wer <= 0.15, [f.text for f in finals]
    for final, sentence in zip(finals, speech.sentences, strict=False):
        assert word_error_rate(sentence, final.text) <= 0.35, (sentence, final.text)
        assert final.language_code == "en-US"
        assert list(final.target_language_codes) == ["es"]
        assert 0.0 < final.confidence <= 1.0


def test_final_offsets_match_the_audio(mono_events, speech: Speech) -> None:
    finals = of_kind(mono_events, "final_transcript")
    ends = [f.audio_end_offset.ToTimedelta().total_seconds() for f in finals]
    starts = [f.audio_start_offset.ToTimedelta().total_seconds() for f in finals]
    assert all(s < e for s, e in zip(starts, ends, strict=False))
    assert all(e1 <= s2 for e1, s2 in zip(ends, starts[1:], strict=False))
    for end, expected in zip(ends, speech.sentence_end_s, strict=False):
        assert abs(end - expected) < 0.6, (ends, speech.sentence_end_s)


def test_interims_precede_each_final_never_repeat_and_grow_a_stable_prefix(mono_events) -> None:
    kinds = [(k, m) for k, m in mono_events if k in ("interim_transcript", "final_transcript")]
    finals = of_kind(mono_events, "final_transcript")
    for final in finals:
        interims = [m for k, m in kinds if k == "interim_transcript" and m.utterance_id == final.utterance_id]
        assert interims, f"no interim before final {final.utterance_id}"
        position_final = next(i for i, (k, m) in enumerate(kinds) if m is final)
        assert all(kinds.index(("interim_transcript", m)) < position_final for m in interims)
        seen = [(m.text, m.stable_text) for m in interims]
        assert all(a != b for a, b in itertools.pairwise(seen)), seen
        # stable_text: what successive hypotheses agree on; the text starts with it, and it only grows.
        stables = [m.stable_text for m in interims]
        assert all(m.text.startswith(m.stable_text) for m in interims), seen
        assert all(b.startswith(a) for a, b in itertools.pairwise(stables)), stables
        assert stables[-1], f"nothing became stable before final {final.utterance_id}: {seen}"


def test_each_final_gets_a_streamed_spanish_translation(mono_events) -> None:
    finals = of_kind(mono_events, "final_transcript")
    completes = {c.utterance_id: c for c in of_kind(mono_events, "translation_complete")}
    assert sorted(completes) == [f.utterance_id for f in finals]
    for uid, complete in completes.items():
        tokens = [t for t in of_kind(mono_events, "translation_token") if t.utterance_id == uid]
        assert len(tokens) >= 2, "translation should arrive as several tokens"
        assert "".join(t.text for t in tokens).strip() == complete.text
        assert complete.target_language_code == "es" and complete.source_language_code == "en-US"
    assert "Buenos días" in completes[1].text
    assert "contrato" in completes[2].text
    assert "viernes" in completes[3].text


def finals_text(events: list[tuple[str, Any]]) -> list[str]:
    return [f.text for f in of_kind(events, "final_transcript")]


def test_48k_stereo_gives_the_same_finals(offline_stub, speech: Speech, mono_events, tmp_path: Path) -> None:
    data = convert(speech, tmp_path / "48k.raw", rate_hz=48000, channels=2)
    events = interpret(offline_stub, config(rate=48000, channels=2), data, 48000 * 4)
    assert finals_text(events) == finals_text(mono_events)


@pytest.mark.parametrize(
    ("encoding", "sox_encoding"),
    [(pb.AUDIO_ENCODING_MULAW, "mu-law"), (pb.AUDIO_ENCODING_ALAW, "a-law")],
    ids=["mulaw", "alaw"],
)
def telephone_finals(stub, speech: Speech, tmp_path: Path, encoding: pb.AudioEncoding, sox_encoding: str) -> list[Any]:
    data = convert(speech, tmp_path / f"8k-{sox_encoding}.raw", rate_hz=8000, encoding=sox_encoding, bits=8)
    return of_kind(interpret(stub, config(rate=8000, encoding=encoding), data, 8000), "final_transcript")


# pocketsphinx's wideband model on G.711 with its second, batch-CMN pass: 3-4 of these 22 words
# wrong (14-18 %, several runs); live CMN alone gets most of them wrong (the control below).
WER_8K_SECOND_PASS = 0.3


@pytest.mark.parametrize(
    ("encoding", "sox_encoding"),
    [(pb.AUDIO_ENCODING_MULAW, "mu-law"), (pb.AUDIO_ENCODING_ALAW, "a-law")],
    ids=["mulaw", "alaw"],
)
def test_8k_telephony_gives_one_final_per_sentence(
    offline_stub, speech: Speech, tmp_path: Path, encoding: pb.AudioEncoding, sox_encoding: str
) -> None:
    """G.711 at 8 kHz runs through decoding, resampling, endpointing and the second pass.

    Decoding is checked bit for bit against sox in test_audio_convert. The
    wideband model hears telephone audio worse (README, "Telephone audio"),
    and its choice between near-equal hypotheses varies a little between
    runs: the bound is the measured 3-4 wrong words of 22 plus two or three.
    """
    finals = telephone_finals(offline_stub, speech, tmp_path, encoding, sox_encoding)
    assert len(finals) == len(speech.sentences), [f.text for f in finals]
    ends = [f.audio_end_offset.ToTimedelta().total_seconds() for f in finals]
    assert all(abs(end - expected) < 0.6 for end, expected in zip(ends, speech.sentence_end_s, strict=True)), ends
    heard = " ".join(f.text for f in finals)
    assert word_error_rate(" ".join(speech.sentences), heard) <= WER_8K_SECOND_PASS, heard


def test_without_the_second_pass_8k_misses_the_bound(server_factory, speech: Speech, tmp_path: Path) -> None:
    """The control: the 8 kHz bound above fails without what it is there to guard (the second pass).

    Live CMN alone got 45-50 % of these words wrong, which the old bound (60 %) let pass.
    """
    from tests.conftest import stub_for

    channel, stub = stub_for(server_factory(pocketsphinx_second_pass="never", offline_workers=1))
    with channel:
        finals = telephone_finals(stub, speech, tmp_path, pb.AUDIO_ENCODING_MULAW, "mu-law")
    heard = " ".join(f.text for f in finals)
    assert word_error_rate(" ".join(speech.sentences), heard) > WER_8K_SECOND_PASS, heard


def test_voice_activity_events_bracket_each_sentence(offline_stub, speech: Speech) -> None:
    events = interpret(offline_stub, config(vad=True, interim=False), speech.pcm(), 32000)
    activity = [m.type for m in of_kind(events, "voice_activity")]
    begin, end = pb.VOICE_ACTIVITY_TYPE_SPEECH_BEGIN, pb.VOICE_ACTIVITY_TYPE_SPEECH_END
    assert activity == [begin, end] * len(speech.sentences)
    assert not of_kind(events, "interim_transcript")


def test_translate_text_streams_tokens(offline_stub) -> None:
    request = pb.TranslateTextRequest(
        text="Good morning, Tongyeok will present the contract.",
        source_language_code="en",
        target_language_codes=["es"],
        translation_options=pb.TranslationOptions(glossary=[pb.GlossaryEntry(source_term="Tongyeok")]),
    )
    events = [
        (r.WhichOneof("event"), getattr(r, r.WhichOneof("event")))
        for r in offline_stub.TranslateText(request, timeout=30)
    ]
    tokens = of_kind(events, "translation_token")
    (complete,) = of_kind(events, "translation_complete")
    assert len(tokens) >= 3
    assert "".join(t.text for t in tokens).strip() == complete.text
    assert complete.text.startswith("Buenos días") and "Tongyeok" in complete.text and "contrato" in complete.text
