"""Languages of the portal: English (the message ids themselves) and Swedish, chosen per user.

Catalogues are JSON files `locale/<language>/<area>.json` mapping an English text to its translation;
each area of the portal keeps its own file so the areas can grow apart. A text without a translation is
shown in English. Texts may hold `{name}` placeholders, filled after translation.
"""

import json
import logging
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

LOCALE_DIR = Path(__file__).parent / "locale"

LANGUAGES: dict[str, str] = {"en": "English", "sv": "Svenska"}
"""The languages a user may choose, with their names in themselves."""

DEFAULT_LANGUAGE = "en"

Translate = Callable[..., str]


@cache
def catalogue(language: str) -> Mapping[str, str]:
    """Return every translation of a language, merged from its area files (English has none)."""
    merged: dict[str, str] = {}
    folder = LOCALE_DIR / language
    if language == DEFAULT_LANGUAGE or not folder.is_dir():
        return merged
    for path in sorted(folder.glob("*.json")):
        entries = json.loads(path.read_text(encoding="utf-8"))
        for english, translated in entries.items():
            if english in merged and merged[english] != translated:
                log.warning("%s translates %r differently from an earlier file", path.name, english)
            merged[english] = translated
    return merged


def language_of(preferred: str | None, accept_language: str | None = None) -> str:
    """Return the language to show: the user's choice, else the browser's first known language, else English."""
    if preferred in LANGUAGES:
        return preferred
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def translator(language: str) -> Translate:
    """Return `t(text, **values)`: the text in the language, placeholders filled ."""
    table = catalogue(language if language in LANGUAGES else DEFAULT_LANGUAGE)

    def t(text: str, **values: object) -> str:
        translated = table.get(text, text)
        # The result is a plain str: Jinja escapes it, values included, where a page shows it.
        return translated.format(**values) if values else translated

    return t


__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "Translate", "catalogue", "language_of", "translator"]
