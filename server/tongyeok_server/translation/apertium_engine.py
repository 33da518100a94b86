"""Apertium: the embedded, offline, rule-based translator.

The installed language pairs are discovered at start-up from the Debian
packages' mode files; each pair gets one persistent null-flush pipeline
(``apertium_pipeline``, read on the server's loop), started on first use or
by ``warm_up()``. A sentence is translated whole (a few milliseconds once
warm) and then handed out word by word, so callers see the same token
protocol as from an LLM.

Options: glossary terms (do-not-translate and fixed renderings) are honoured
through placeholder words; styles other than literal and context sentences
are not (``ignored_options`` says so).
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tongyeok_server import languages
from tongyeok_server.engines import EngineDescription
from tongyeok_server.errors import ServiceError, StartError, invalid_argument
from tongyeok_server.settings import OpenAISettings, TranslationSettings
from tongyeok_server.translation import glossary
from tongyeok_server.translation.apertium_pipeline import ApertiumPipeline
from tongyeok_server.translation.base import (
    Style,
    TokenDelta,
    TranslationOptions,
    TranslationRequest,
    TranslationStream,
    Translator,
)
from tongyeok_server.translation.running import RunningTranslations

log = logging.getLogger(__name__)

DEFAULT_MODES_DIR = Path("/usr/share/apertium/modes")
INSTALL_HINT = "install the Debian packages: sudo apt-get install apertium apertium-eng-spa"

STYLE_IGNORED = (
    "translation_options.style: apertium translates literally (rule-based); "
    "BUSINESS/NEUTRAL styles need an LLM engine such as --translator openai"
)
CONTEXT_IGNORED = "translation_options.context_sentences: apertium translates each sentence on its own"

# "eng-spa.mode", or a variant such as "spa-eng_US.mode"; debug and tagger
# modes ("eng-spa-tagger.mode") do not match.
_MODE_FILE = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})(?:_([A-Za-z0-9]+))?\.mode$")
# A word with the whitespace before it: the unit of the token protocol.
_TOKEN = re.compile(r"\s*\S+")


@dataclass(frozen=True)
class ModeInfo:
    """One installed translation direction."""

    mode: str  # "eng-spa", "spa-eng_US"
    path: Path
    source: str  # BCP-47 language subtag: "en"
    target: str


def _subtag(code: str) -> str:
    # ISO 639-3 codes without a 639-1 equivalent are valid BCP-47 as they are.
    return languages.ISO639_3_TO_1.get(code, code)


def discover_modes(modes_dir: Path = DEFAULT_MODES_DIR) -> dict[tuple[str, str], ModeInfo]:
    """Find the translation modes installed in ``modes_dir``, keyed by (source, target) subtags.

    A plain mode (``spa-eng``) is preferred; a variant (``spa-eng_US``) stands
    in for its direction only when no plain mode exists, because a regional
    variant is still a good answer for a caller asking for ``en``.
    """
    found: dict[tuple[str, str], ModeInfo] = {}
    try:
        files = sorted(modes_dir.glob("*.mode"))
    except OSError:
        return found
    # Plain modes first (sorted by "has variant"), so a variant never displaces one.
    for path in sorted(files, key=lambda p: ("_" in p.name, p.name)):
        match = _MODE_FILE.match(path.name)
        if match is None:
            continue
        pair = (_subtag(match.group(1)), _subtag(match.group(2)))
        if pair[0] == pair[1] or pair in found:
            continue
        found[pair] = ModeInfo(path.name.removesuffix(".mode"), path, *pair)
    return found


class ApertiumTranslator(Translator):
    """The Apertium engine: one shared, lazily started pipeline per installed pair."""

    def __init__(self, modes_dir: Path = DEFAULT_MODES_DIR) -> None:
        missing = [tool for tool in ("lt-proc", "apertium-wblank-mode") if shutil.which(tool) is None]
        if missing:
            raise StartError(f"apertium translator: {', '.join(missing)} not found; {INSTALL_HINT}")
        self._modes = discover_modes(modes_dir)
        if not self._modes:
            raise StartError(f"apertium translator: no language pair installed in {modes_dir}; {INSTALL_HINT}")
        # Pipeline objects are cheap (no process until first use); making them
        # all now means no lock is needed to look one up.
        self._pipelines = {pair: ApertiumPipeline(info.mode, info.path) for pair, info in self._modes.items()}
        self._running = RunningTranslations("apertium")
        pairs = ", ".join(f"{s}->{t} ({i.mode})" for (s, t), i in sorted(self._modes.items()))
        log.info("apertium pairs installed: %s", pairs)

    @property
    def description(self) -> EngineDescription:
        """Engine name and the installed modes."""
        modes = ", ".join(sorted(i.mode for i in self._modes.values()))
        return EngineDescription("apertium", f"rule-based, offline; modes {modes}")

    def language_pairs(self) -> Sequence[tuple[str, str]]:
        """Installed directions as BCP-47 subtags, e.g. ``[("en", "es"), ("es", "en")]``."""
        return sorted(self._modes)

    def ignored_options(self, options: TranslationOptions) -> list[str]:
        """A requested style other than literal, and requested context; the glossary is honoured in full."""
        ignored = []
        if "style" in options.requested and options.style is not Style.LITERAL:
            ignored.append(STYLE_IGNORED)
        if "context_sentences" in options.requested and options.context_sentences > 0:
            ignored.append(CONTEXT_IGNORED)
        return ignored

    def effective_options(self, options: TranslationOptions) -> TranslationOptions:
        """Rule-based: literal, each sentence on its own, whatever was asked."""
        return replace(options, style=Style.LITERAL, context_sentences=0)

    async def warm_up(self) -> dict[str, float]:
        """Start every pair's pipeline now, in parallel; seconds each took, by mode.

        The server calls this at start-up so that the first sentence of the
        first session is as fast as the others. A pair that fails to start is
        logged and tried again on first use.
        """

        async def start(pipeline: ApertiumPipeline) -> float:
            began = time.perf_counter()
            await pipeline.start()
            return time.perf_counter() - began

        pipelines = list(self._pipelines.values())
        results = await asyncio.gather(*(start(p) for p in pipelines), return_exceptions=True)
        timings: dict[str, float] = {}
        for pipeline, result in zip(pipelines, results, strict=True):
            if isinstance(result, ServiceError):
                log.warning("apertium %s did not start: %s", pipeline.mode, result.message)
            elif isinstance(result, BaseException):
                raise result
            else:
                timings[pipeline.mode] = result
        log.info("apertium warmed up: %s", ", ".join(f"{m} {t * 1000:.0f} ms" for m, t in timings.items()))
        return timings

    def translate(self, request: TranslationRequest) -> TranslationStream:
        """The words of ``request``'s translation; INVALID_ARGUMENT for a pair that is not installed."""
        return self._running.guard(self._translate(request))

    async def _translate(self, request: TranslationRequest) -> TranslationStream:
        pair = (languages.primary(request.source_language), languages.primary(request.target_language))
        pipeline = self._pipelines.get(pair)
        if pipeline is None:
            available = ", ".join(f"{s}->{t}" for s, t in self.language_pairs())
            raise invalid_argument(
                f"apertium cannot translate {request.source_language} -> {request.target_language}; "
                f"installed pairs: {available}"
            )
        if not request.text.strip():
            return
        protected = glossary.protect(request.text, request.glossary_for_target())
        translated = await pipeline.translate(protected.text)
        for token in _TOKEN.findall(protected.restore(translated)):
            yield TokenDelta(token)

    def pipeline(self, source: str, target: str) -> ApertiumPipeline:
        """Return the pipeline serving ``source`` -> ``target`` (for tests and diagnostics)."""
        return self._pipelines[(languages.primary(source), languages.primary(target))]

    async def close(self) -> None:
        """Fail the translations still running, stop every pipeline's processes and wait for them."""
        self._running.close()
        await asyncio.gather(*(pipeline.close() for pipeline in self._pipelines.values()))


def create(settings: TranslationSettings, openai: OpenAISettings) -> ApertiumTranslator:
    """Build the translator (registry factory); StartError when Apertium is not installed."""
    del settings, openai  # nothing to configure: pairs come from the installed packages
    return ApertiumTranslator()
