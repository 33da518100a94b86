"""BCP-47 language tags: normalising them and matching them across engines.

Recognisers care about regions (Google needs ``ko-KR``); translators work on
the language alone (Apertium's ``eng-spa`` serves ``en-US`` and ``en-GB``).
"""

from __future__ import annotations

import re

_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

# Apertium names languages with ISO 639-3 codes; callers use BCP-47 (639-1
# where one exists).
ISO639_3_TO_1 = {
    "eng": "en",
    "spa": "es",
    "cat": "ca",
    "glg": "gl",
    "por": "pt",
    "fra": "fr",
    "ita": "it",
    "deu": "de",
    "nld": "nl",
    "isl": "is",
    "mkd": "mk",
    "bul": "bg",
    "ron": "ro",
    "oci": "oc",
    "eus": "eu",
    "epo": "eo",
    "swe": "sv",
    "dan": "da",
    "nob": "nb",
    "nno": "nn",
    "afr": "af",
    "kor": "ko",
    "jpn": "ja",
    "zho": "zh",
    "rus": "ru",
    "ukr": "uk",
    "pol": "pl",
    "ces": "cs",
    "slk": "sk",
    "slv": "sl",
    "hrv": "hr",
    "srp": "sr",
    "bos": "bs",
    "ara": "ar",
    "mlt": "mt",
    "cym": "cy",
    "gle": "ga",
    "bre": "br",
    "arg": "an",
    "ast": "ast",
    "kaz": "kk",
    "tat": "tt",
}


def is_well_formed(tag: str) -> bool:
    """Whether ``tag`` looks like a BCP-47 tag (language plus optional subtags)."""
    return bool(_TAG.match(tag))


def normalize(tag: str) -> str:
    """``en-us`` -> ``en-US``, ``EN`` -> ``en``, ``zh-hant-tw`` -> ``zh-Hant-TW``."""
    parts = tag.strip().replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())
        elif len(part) == 4:
            out.append(part.title())
        else:
            out.append(part.lower())
    return "-".join(out)


def primary(tag: str) -> str:
    """The language subtag alone: ``ko-KR`` -> ``ko``."""
    return normalize(tag).split("-")[0]


def same_language(a: str, b: str) -> bool:
    """Whether two tags name the same language, whatever their regions."""
    return primary(a) == primary(b)
