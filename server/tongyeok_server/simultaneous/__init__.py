"""Simultaneous interpretation: translating a sentence while it is still being spoken.

The data flow, for one utterance into one target language::

    interim.stable_text ─▶ source.translatable  (the stable words, minus the held-back tail)
                              │ grows
                              ▼
                          a re-translation of that prefix (the engine; continuing the committed text)
                              │
                              ▼
                          agreement.Agreement  (commit what successive re-translations agree on)
                              │ committed text ─▶ translation_token events (never taken back)
                              │ the rest of the latest ─▶ translation_tentative
    final transcript ─────────▶ the whole sentence, continuing the committed text ─▶ the last tokens + complete

- ``text``: translations as tokens that keep their spacing, sentence ends,
  joining, and aligning a finished translation to what is already committed.
- ``agreement``: the commit policy (LocalAgreement-n over re-translations).
- ``source``: which words of the stable transcript are translated.
- ``pacing``: latency levels and the defaults per direction (verb-final
  sources wait longer), and the request budget for engines paid per request.
"""
