"""The engines' settings groups: recognition, translation, speech output, receipts, and the clouds they share.

Each engine package is handed its own group and, for a cloud engine, the
connection group of its provider (``GoogleSettings``, ``OpenAISettings``),
never the whole configuration.
"""

from __future__ import annotations

import os
from typing import Literal

from tongyeok_server.settings.fields import Group, option


def default_workers() -> int:
    """One per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


RecognizerName = Literal["whisper", "pocketsphinx", "google"]
TranslatorName = Literal["apertium", "openai"]
SynthesizerName = Literal["embedded", "espeak", "piper", "openai", "google", "none"]
ReceiptEngineName = Literal["embedded", "tesseract", "rapidocr", "documentai", "openai"]


class RecognitionSettings(Group):
    """Speech recognition: which engine, the embedded engines' workers, Google Speech-to-Text's recognizer."""

    recognizer: RecognizerName = option("whisper", "speech engine: whisper (embedded), pocketsphinx or google")
    offline_workers: int = option(
        help="embedded recogniser (pocketsphinx, whisper) worker processes (default: one per core)",
        default_factory=default_workers,
        ge=1,
    )
    offline_streams_per_worker: int = option(3, "concurrent streams one pocketsphinx worker serves in real time", ge=1)
    pocketsphinx_second_pass: Literal["narrowband", "always", "never"] = option(
        "narrowband", "re-decode each sentence with batch CMN: narrowband (streams under 16 kHz), always or never"
    )
    whisper_model: str = option("", "CTranslate2 Whisper model directory (default: the packaged Whisper base)")
    whisper_model_sha256: str = option(
        "",
        "SHA-256 of --whisper-model's model.bin, checked at load",
        pattern=r"^([0-9a-fA-F]{64})?$",
        accepts="64 hexadecimal digits",
    )
    whisper_device: Literal["cpu", "cuda", "auto"] = option("cpu", "where Whisper runs: cpu, cuda or auto")
    whisper_threads: int = option(1, "cores one whisper worker decodes on", ge=1)
    whisper_streams_per_worker: int = option(2, "concurrent streams one whisper worker serves in real time", ge=1)
    google_location: str = option("global", "Speech-to-Text location, e.g. global, eu, us-central1", min_length=1)
    google_recognizer: str = option("_", "recognizer id ('_' is the implicit one)", min_length=1)
    google_model: str = option("long", "Speech-to-Text model, e.g. long, short, chirp_2", min_length=1)
    google_endpoint: str = option("", "API endpoint override host:port (default from location)")


class GoogleSettings(Group):
    """How to reach Google Cloud: shared by Speech-to-Text, Text-to-Speech and Document AI."""

    google_project: str = option("", "Google Cloud project (default: GOOGLE_CLOUD_PROJECT)")
    google_insecure: bool = option(False, "plaintext channel to --google-endpoint, no credentials (tests)")
    # Issue 15: a private endpoint or a TLS-inspecting proxy signs with its own CA.
    google_ca_file: str = option("", "PEM file of the CA(s) to trust for the Google endpoint (default: system roots)")


class OpenAISettings(Group):
    """How to reach OpenAI (or a compatible server): shared by translation, speech output and receipts."""

    openai_base_url: str = option("", "API base URL (default: OPENAI_BASE_URL or OpenAI's)")
    openai_timeout_s: float = option(30.0, "seconds before a translation request times out", gt=0)
    openai_max_retries: int = option(2, "retries of a failed or cut translation", ge=0)


class TranslationSettings(Group):
    """Translation: which engine, and the model the OpenAI engine asks."""

    translator: TranslatorName = option("apertium", "translation engine: apertium or openai")
    openai_model: str = option("gpt-4o-mini", "chat model used for translation", min_length=1)


class SynthesisSettings(Group):
    """Speech output: which engine, its voices, and keeping it out of the recognition (echo suppression)."""

    synthesizer: SynthesizerName = option(
        "embedded", "speech output engine: embedded (Piper + espeak-ng), espeak, piper, openai, google or none"
    )
    synthesis_threads: int = option(
        help="clauses the embedded neural voice (Piper) synthesizes at once (default: one per core)",
        default_factory=default_workers,
        ge=1,
    )
    openai_tts_model: str = option("gpt-4o-mini-tts", "OpenAI speech model", min_length=1)
    openai_tts_voice: str = option("coral", "OpenAI voice 'default' selects", min_length=1)
    openai_tts_instructions: str = option(
        "Speak as a calm, professional conference interpreter: clear, even pace, warm and neutral tone.",
        "how the OpenAI voice should sound (models that take instructions)",
    )
    openai_tts_base_url: str = option("", "speech API base URL (default: --openai-base-url, then OpenAI's)")
    google_tts_location: str = option(
        "global", "Text-to-Speech location: global, us, eu, asia-southeast1 ...", min_length=1
    )
    google_tts_voice: str = option(
        "Chirp3-HD-Charon",
        "Google voice 'default' selects in each locale, without the locale (streaming: Chirp3-HD)",
        min_length=1,
    )
    echo_suppression: bool = option(
        True,
        "keep the server's spoken translations out of recognition when a caller's microphone hears them "
        "(a session may turn it off with config.echo_suppression)",
    )
    echo_max_delay_s: float = option(
        4.0, "longest delay (seconds) between sending speech and hearing it that echo is looked for", ge=0.5, le=15.0
    )
    google_tts_endpoint: str = option(
        "", "Text-to-Speech host:port (default: the location's); --google-insecure/--google-ca-file apply"
    )


class ExpensesSettings(Group):
    """Expenses from receipts: the reader, its threads and languages, the exchange rates of reports."""

    receipt_engine: ReceiptEngineName = option(
        "embedded",
        "receipt reader: embedded (Tesseract kor+eng, RapidOCR for Latin when installed), tesseract, "
        "rapidocr (Latin only), documentai or openai",
    )
    receipt_threads: int = option(
        help="receipts the embedded reader reads at once (default: one per core)",
        default_factory=default_workers,
        ge=1,
    )
    receipt_languages: str = option("kor+eng", "Tesseract languages for receipts", min_length=1)
    expense_rates: str = option(
        "", "exchange-rates file for reports (`USD KRW 1385.20` per line; re-read when it changes)"
    )
    documentai_processor: str = option(
        "", "Document AI expense processor: projects/P/locations/L/processors/ID[/processorVersions/V]"
    )
    documentai_endpoint: str = option("", "Document AI host:port (default: LOCATION-documentai.googleapis.com)")
    openai_vision_model: str = option(
        "gpt-4o-mini", "OpenAI model that reads receipts (vision, structured output)", min_length=1
    )
