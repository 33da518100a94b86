"""Glossary placeholders, engine-independent (no Apertium needed)."""

from __future__ import annotations

import re

from tongyeok_server.translation.base import GlossaryTerm
from tongyeok_server.translation.glossary import protect, term_pattern

PLACEHOLDER = re.compile(r"ZQXGLOS[A-Z]+1")


def test_no_terms_changes_nothing():
    protected = protect("Good morning.", [])
    assert protected.text == "Good morning."
    assert protected.restore("Buenos días.") == "Buenos días."


def test_keep_term_round_trip_keeps_the_speakers_spelling():
    protected = protect("Tongyeok and TONGYEOK and tongyeok.", [GlossaryTerm("Tongyeok")])
    assert "tongyeok" not in protected.text.lower()
    assert len(PLACEHOLDER.findall(protected.text)) == 3
    # An identity "translation" brings back each occurrence as it was written.
    assert protected.restore(protected.text) == "Tongyeok and TONGYEOK and tongyeok."


def test_target_term_replaces_placeholder():
    protected = protect("The cloud report is ready.", [GlossaryTerm("cloud report", "informe de nube")])
    (placeholder,) = PLACEHOLDER.findall(protected.text)
    assert protected.text == f"The {placeholder} is ready."
    assert protected.restore(f"El {placeholder} está listo.") == "El informe de nube está listo."


def test_restore_ignores_case_changes_by_the_engine():
    protected = protect("acme wins", [GlossaryTerm("Acme", "ACME Corp")])
    (placeholder,) = PLACEHOLDER.findall(protected.text)
    assert protected.restore(placeholder.lower() + " gana") == "ACME Corp gana"


def test_whole_words_only():
    protected = protect("Acmeville is not Acme, nor is SuperAcme.", [GlossaryTerm("Acme", "X")])
    assert protected.text.startswith("Acmeville is not ZQXGLOS")
    assert protected.text.endswith(", nor is SuperAcme.")
    assert len(protected.replacements) == 1


def test_longest_term_first():
    terms = [GlossaryTerm("Acme", "A"), GlossaryTerm("Acme Cloud", "AC"), GlossaryTerm("Acme Cloud Suite", "ACS")]
    protected = protect("Acme Cloud Suite beats Acme Cloud and Acme.", terms)
    assert protected.restore(protected.text) == "ACS beats AC and A."


def test_multi_word_term_matches_any_whitespace():
    protected = protect("the cloud\n  report", [GlossaryTerm("cloud report", "informe")])
    assert protected.restore(protected.text) == "the informe"


def test_terms_with_punctuation_edges():
    protected = protect("We use C++ and .NET daily.", [GlossaryTerm("C++"), GlossaryTerm(".NET", "dotnet")])
    assert "C++" not in protected.text
    assert protected.restore(protected.text) == "We use C++ and dotnet daily."


def test_placeholder_prefix_avoids_text_that_already_contains_it():
    protected = protect("ZQXGLOSA1 is a word here, and so is Acme.", [GlossaryTerm("Acme", "X")])
    ((placeholder, _),) = protected.replacements
    assert placeholder != "ZQXGLOSA1"
    restored = protected.restore(protected.text)
    assert restored == "ZQXGLOSA1 is a word here, and so is X."


def test_many_terms_get_distinct_placeholders():
    terms = [GlossaryTerm(f"term{i}", f"T{i}") for i in range(40)]
    text = " ".join(f"term{i}" for i in range(40))
    protected = protect(text, terms)
    placeholders = [p for p, _ in protected.replacements]
    assert len(set(placeholders)) == 40
    assert protected.restore(protected.text) == " ".join(f"T{i}" for i in range(40))


def test_term_pattern_ignores_blank_terms():
    assert term_pattern(["", "  "]) is None


def test_a_text_that_fills_the_placeholders_space_gets_a_short_free_prefix_in_one_pass():
    # Issue 24: the prefix grew one letter per pass over the text while it occurred there, so a TranslateText
    # of "ZQXGLOSQQQ..." cost a pass per character on the event loop and placeholders as long as the text.
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    texts = [
        "ZQXGLOS" + "Q" * 4980 + " the contract",
        " ".join("zqxglos" + a + b for a in letters for b in letters)[:4900] + " the contract",
    ]
    for text in texts:
        protected = protect(text, [GlossaryTerm("contract", "contrato")])
        (placeholder,) = {p for p, _ in protected.replacements}
        assert len(placeholder) <= len("ZQXGLOS") + 3 + 2, placeholder  # prefix, its letters, label, "1"
        assert placeholder.lower()[:-2] not in text.lower()
        assert protected.restore(protected.text) == text.replace("contract", "contrato")
