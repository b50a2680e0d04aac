"""The written forms of one identifying value, as regular-expression fragments over folded text.

Real hospital data writes a value in many ways. For each kind the fragments here match:

* **names** (PN, PS3.5 6.2): every family, given and middle name word of three letters or more
  alone (not name particles such as "van" or "de"; ideographic words of two characters or more),
  and the words together in any order and subset: family + given either way round with any
  separators ("GARCIA ZOE", "Zoe Garcia", "Garcia, Zoe"), initials with the family name
  ("Z. Garcia", "GARCIA Z", "ZM Garcia"), compound words with or without their hyphen or
  apostrophe ("O'Neill", "ONeill", "Neill"). Prefix and suffix components (Dr, Jr) are not
  identifying and are not matched alone.
* **IDs**: with and without leading zeros and with or without any separator between characters
  ("00123-4567", "1234567", "123 4567"), and the digit runs of five or more inside an ID with a
  prefix ("MRN-48213977" -> "48213977").
* **dates** (YYYYMMDD): ISO, day-month-year and month-day-year with any of ``- / .`` or a space,
  with or without zero padding, with four- or two-digit years, and with the month written as a
  word in English, German, French, Spanish, Italian, Dutch or Portuguese ("4 March 2021",
  "March 4, 2021", "04-MAR-2021", "4. März 2021"), and month + year.
* **phones**: the digits with any separators, and the last ten and seven digits alone.
* **phrases** (institutions, address parts, other identifying text): the words in order with any
  separators between them.

Fragments carry their own boundaries: words are not matched inside longer words, numbers not
inside longer numbers, and text in scripts written without spaces (CJK) is matched anywhere.
Both the cleaner and the verify stage compile these fragments, each with its own code around them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator

from gateway.identity.fold import fold

MIN_TOKEN = 3  # shortest name word matched alone (Latin, Greek, Cyrillic... scripts)
MIN_CJK_TOKEN = 2  # shortest ideographic/kana/hangul name word matched alone
MIN_ID = 4  # shortest ID (letters and digits, separators not counted) matched
MIN_ID_DIGIT_RUN = 5  # digit runs inside a prefixed ID matched alone from this length
MIN_PHONE = 7  # digits
MIN_PHRASE = 4  # letters and digits of a phrase

# Name particles: part of a family name, not identifying alone (still matched inside phrases).
PARTICLES = frozenset({
    "van", "von", "der", "den", "de", "del", "della", "dei", "da", "das", "do", "dos", "di", "du",
    "la", "le", "les", "el", "al", "bin", "ben", "ibn", "ter", "ten", "zu", "y", "e", "st", "mc",
    "mac", "af", "av", "und", "and",
})

WORD_L, WORD_R = r"(?<![^\W_])", r"(?![^\W_])"
DIGIT_L, DIGIT_R = r"(?<!\d)", r"(?!\d)"
SEP = r"[\W_]+"  # one or more separators
OPT_SEP = r"[\W_]?"  # at most one separator (between the characters of an ID)
_WORDS = re.compile(r"[^\W_]+")
_PIECES = re.compile(r"[-'.\u2019]")
_PN_GROUPS = re.compile(r"=")
_DIGITS = re.compile(r"\d+")
# Scripts written without spaces between words: Han, kana, Hangul.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

_MONTHS: tuple[tuple[str, ...], ...] = (
    ("january", "jan", "januar", "janvier", "janv", "enero", "ene", "gennaio", "gen", "januari",
     "janeiro"),
    ("february", "feb", "februar", "fevrier", "fevr", "fev", "febrero", "febbraio", "februari",
     "fevereiro"),
    ("march", "mar", "marz", "maerz", "mars", "marzo", "maart", "mrt", "marco"),
    ("april", "apr", "avril", "avr", "abril", "abr", "aprile"),
    ("may", "mai", "mayo", "maggio", "mag", "mei", "maio"),
    ("june", "jun", "juni", "juin", "junio", "giugno", "giu", "junho"),
    ("july", "jul", "juli", "juillet", "juil", "julio", "luglio", "lug", "julho"),
    ("august", "aug", "aout", "agosto", "ago", "augustus"),
    ("september", "sep", "sept", "septembre", "septiembre", "settembre", "set", "setembro"),
    ("october", "oct", "oktober", "okt", "octobre", "octubre", "ottobre", "ott", "outubro", "out"),
    ("november", "nov", "novembre", "noviembre", "novembro"),
    ("december", "dec", "dezember", "dez", "decembre", "diciembre", "dic", "dicembre",
     "dezembro"),
)


def _bounded(body: str) -> str:
    """``body`` not inside a longer word, unless it is written in a script without spaces."""
    if _UNSPACED.search(body):
        return body
    left = DIGIT_L if body[:1].isdigit() else WORD_L
    right = DIGIT_R if body[-1:].isdigit() else WORD_R
    return f"{left}{body}{right}"


def _word(word: str) -> str:
    """One folded word, its hyphens and apostrophes optional ("o'neill" ~ "oneill", "o neill")."""
    pieces = [p for p in _PIECES.split(word) if p]
    return OPT_SEP.join(re.escape(p) for p in pieces)


def _long_enough(word: str) -> bool:
    if _UNSPACED.search(word):
        return len(word) >= MIN_CJK_TOKEN
    return sum(c.isalnum() for c in word) >= MIN_TOKEN and word not in PARTICLES


def name_words(value: str) -> list[tuple[list[str], list[str]]]:
    """Per component group of a PN value: its folded family words and its given + middle words
    (prefix and suffix components are left out)."""
    out = []
    for group in _PN_GROUPS.split(value):
        parts = group.split("^")
        if len(parts) == 1 and "," in parts[0]:  # "Garcia, Zoe": family, given
            parts = parts[0].split(",", 1)
        elif len(parts) == 1:  # one component: in PS3.5 the family name, often "GIVEN FAMILY"
            words = fold(parts[0]).split()
            if len(words) > 1:
                parts = [words[-1], " ".join(words[:-1])]
        family = fold(parts[0]).split()
        others = [w for p in parts[1:3] for w in fold(p).split()]
        family = [w.strip(".,") for w in family if w.strip(".,")]
        others = [w.strip(".,") for w in others if w.strip(".,")]
        if family or others:
            out.append((family, others))
    return out


def name_fragments(value: str) -> Iterator[str]:
    """The forms of one PN value: words alone, the name in any order, initials with family."""
    for family, others in name_words(value):
        for word in family + others:
            pieces = [p for p in _PIECES.split(word) if p]
            for piece in pieces if len(pieces) > 1 else []:
                if _long_enough(piece):
                    yield _bounded(re.escape(piece))
            if _long_enough(word) or (len(pieces) > 1 and _long_enough("".join(pieces))):
                yield _bounded(_word(word))
        yield from _combinations(family, others)


def _combinations(family: list[str], others: list[str]) -> Iterator[str]:
    if not family:
        return
    fam = SEP.join(_word(w) for w in family)
    if not others:
        if len(family) > 1:
            yield _bounded(fam)
        return
    given = SEP.join(_word(w) for w in others)
    yield _bounded(f"{fam}{SEP}{given}")
    yield _bounded(f"{given}{SEP}{fam}")
    initials = [re.escape(w[0]) for w in others if w[0].isalnum()]
    if len(initials) > 1:
        initials.append(r"\.?[\W_]*".join(initials))
    parts = [p for w in family for p in w.split("-") if p and p not in PARTICLES]
    targets = [fam] + [_word(p) for p in parts if len(parts) > 1]
    for target in targets:
        for g in others:
            yield _bounded(f"{target}{SEP}{_word(g)}")
            yield _bounded(f"{_word(g)}{SEP}{target}")
        for i in initials:
            yield _bounded(rf"{i}\.?[\W_]*{target}")
            yield _bounded(rf"{target}{SEP}{i}\.?")


def id_fragments(value: str) -> Iterator[str]:
    """An ID with or without leading zeros and separators; long digit runs inside it alone."""
    core = "".join(c for c in fold(value) if c.isalnum())
    if len(core) < MIN_ID:
        return
    yield _bounded(_spaced(core))
    for run in _DIGITS.findall(core):
        if len(run.lstrip("0")) >= MIN_ID_DIGIT_RUN and run != core:
            yield _bounded(_spaced(run))


def _spaced(core: str) -> str:
    """The characters of ``core`` with one optional separator between each two; leading zeros
    optional while what is left is still an ID (``MIN_ID`` characters)."""
    stripped = core.lstrip("0")
    if len(stripped) < MIN_ID:
        stripped = core
    body = OPT_SEP.join(re.escape(c) for c in stripped)
    return f"(?:0+{OPT_SEP})?{body}" if stripped != core else body


def phone_fragments(value: str) -> Iterator[str]:
    """A telephone number's digits with any separators; its last ten and seven digits too."""
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) < MIN_PHONE:
        return
    for tail in {digits, digits[-10:], digits[-7:]}:
        yield rf"(?:\+\s*)?{DIGIT_L}" + r"[\s().\-/]*".join(tail) + DIGIT_R


def phrase_fragments(value: str) -> Iterator[str]:
    """The words of a phrase in order with any separators between them."""
    words = _WORDS.findall(fold(value))
    if sum(len(w) for w in words) < MIN_PHRASE:
        return
    yield _bounded(r"[\W_]*".join(re.escape(w) for w in words))


def address_parts(value: str) -> list[str]:
    """The parts of an address (PS3.3: lines separated by ^, commas or line breaks)."""
    return [p.strip() for p in re.split(r"[\^,;\n\r]+", value) if p.strip()]


def _num(n: int) -> str:
    return f"0?{n}" if n < 10 else str(n)


def date_fragments(value: str) -> Iterator[str]:
    """The written forms of a YYYYMMDD date."""
    try:
        day = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return
    y4, y2 = f"{day.year:04d}", f"{day.year % 100:02d}"
    mm, dd = f"{day.month:02d}", f"{day.day:02d}"
    m, d = _num(day.month), _num(day.day)
    year = f"(?:{y4}|{y2})"
    sep = r"\s*[-/.]\s*|\s+"
    sep = f"(?:{sep})"
    yield _bounded(f"{y4}{mm}{dd}")
    yield _bounded(f"{dd}{mm}{y4}")
    yield _bounded(f"{y4}{sep}{m}{sep}{d}")
    yield _bounded(f"{d}{sep}{m}{sep}{year}")
    if day.day != day.month:
        yield _bounded(f"{m}{sep}{d}{sep}{year}")
    names = "|".join(_MONTHS[day.month - 1])
    month = rf"(?:{names})\.?"
    ordinal = r"(?:st|nd|rd|th|er|o|º|\.)?"
    gap = r"[\s\-/.,]*(?:de\s+)?"
    yield rf"{DIGIT_L}{d}{ordinal}{gap}{month}{gap}{year}{DIGIT_R}"
    yield rf"{WORD_L}{month}{gap}{d}{ordinal},?{gap}{year}{DIGIT_R}"
    yield rf"{DIGIT_L}{y4}{gap}{month}{gap}{d}{DIGIT_R}"
    yield rf"{WORD_L}{month}{gap}{y4}{DIGIT_R}"


def fragments(kind: str, values: Iterable[str]) -> Iterator[str]:
    """The fragments of every value of one kind ("name", "id", "phone", "phrase", "date")."""
    make = _MAKERS[kind]
    for value in values:
        yield from make(value)


_MAKERS = {
    "name": name_fragments,
    "id": id_fragments,
    "phone": phone_fragments,
    "phrase": phrase_fragments,
    "date": date_fragments,
}
