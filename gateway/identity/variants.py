"""The written forms of one identifying value, as regular-expression fragments over folded text.

Real hospital data writes a value in many ways. For each kind the fragments here match:

* **names** (PN, PS3.5 6.2): every family, given and middle name word of three letters or more
  alone (not name particles such as "van" or "de"; ideographic words of two characters or more),
  and the words together in any order and subset: family + given either way round with any
  separators ("GARCIA ZOE", "Zoe Garcia", "Garcia, Zoe"), initials with the family name
  ("Z. Garcia", "GARCIA Z", "ZM Garcia"), compound words with or without their hyphen or
  apostrophe ("O'Neill", "ONeill", "Neill"), with ä ö ü å ø written as one letter or two
  ("Muller", "Mueller"). Prefix and suffix components (Dr, Jr) are not identifying and are not
  matched alone.
* **IDs**: with and without leading zeros and with or without any separator between characters
  ("00123-4567", "1234567", "123 4567"), and the digit runs of five or more inside an ID with a
  prefix ("MRN-48213977" -> "48213977").
* **dates** (YYYYMMDD): ISO, day-month-year and month-day-year with any of ``- / .`` or a space,
  with or without zero padding, with four- or two-digit years, and with the month written as a
  word in English, German, French, Spanish, Italian, Dutch or Portuguese ("4 March 2021",
  "March 4, 2021", "04-MAR-2021", "4. März 2021"), and month + year.
* **phones**: the digits with any separators, and the last ten and seven digits alone (with or
  without a trunk prefix 0).
* **phrases** (institutions, address parts, other identifying text): the words in order with any
  separators between them.

Fragments carry their own boundaries: words are not matched inside longer words, numbers not
inside longer numbers, and text in scripts written without spaces (CJK) is matched anywhere.
Each fragment starts with one literal character and the boundary before it is checked just after
it, so that :func:`compile_fragments` can group the fragments by their first character: the
regular-expression engine then skips every position whose character starts no fragment, which
makes a search about a hundred times faster than an alternation of fragments that each start
with a look-behind. Both the cleaner and the verify stage compile these fragments, each with its
own code around them.
"""

# ruff: noqa: RUF001 - generic words in Greek and Cyrillic on purpose

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import NamedTuple

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

# Words that every address or institution may have (folded): not identifying alone.
_GENERIC_PLACES = """
street strasse road avenue lane drive boulevard place square court close terrace gardens park
crescent grove mews walk parade wharf
hill house building floor suite calle avenida plaza paseo camino carrera travessa largo rue
chemin allee impasse quai cours route gasse platz ring damm ufer steig pfad viale piazza corso
vicolo ulica aleja plac osiedle gade gata gatan vagen straat laan plein οδοσ λεωφοροσ улица
проспект hospital hospitals hopital hospitalet hospitalier ospedale spital szpital sygehus
sjukhus sykehus ziekenhuis krankenhaus klinik klinikum kliniken clinic clinics clinica clinique
klinika poliklinik policlinico universitario universitaria universitat universitaet universite
university universitatsklinikum uniklinik medical medicine center centre centro centrum
zentrum general regional county district municipal national memorial royal infirmary institute
institut instituto istituto foundation fundacion stiftung health healthcare care imaging
radiology radiologie radiologia radiodiagnostico radiodiagnostic department abteilung servicio
service unit saint sainte santa santo sankt with wojewodzki powiatowy miejski больница клиника
госпиталь νοσοκομειο κλινικη αγιασ αγιου αγιοσ αγια
"""
GENERIC_PLACE_WORDS = frozenset(_GENERIC_PLACES.split())

WORD_R, DIGIT_R = r"(?![^\W_])", r"(?!\d)"
# The boundary before a fragment, checked after its first character (a look-behind of two).
WORD_AFTER_FIRST, DIGIT_AFTER_FIRST = r"(?<![^\W_].)", r"(?<!\d.)"
SEP = r"[\W_]+"  # one or more separators
OPT_SEP = r"[\W_]?"  # at most one separator (between the characters of an ID)
_TRIM = re.compile(r"^[\W_]+|[\W_]+$")
_WORDS = re.compile(r"[^\W_]+")
_PIECES = re.compile(r"[-'.]")
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


class Fragment(NamedTuple):
    """One written form: its first character (a literal) and a pattern for the rest."""

    first: str
    rest: str


def _left(first: str) -> str:
    """The boundary before a fragment that starts with ``first``, written to follow it."""
    if _UNSPACED.match(first):
        return ""
    return DIGIT_AFTER_FIRST if first.isdigit() else WORD_AFTER_FIRST


def _right(last: str) -> str:
    if _UNSPACED.match(last):
        return ""
    return DIGIT_R if last.isdigit() else WORD_R


def _literal(text: str, middle: str = "", last: str = "") -> Fragment:
    """A fragment that starts with the first character of ``text``; ``middle`` (a pattern)
    follows the rest of ``text`` when given, and ``last`` is the last character it can match."""
    body = re.escape(text[1:]) + middle
    return Fragment(text[0], _left(text[0]) + body + _right(last or text[-1]))


def _word(word: str) -> tuple[str, str]:
    """A folded word as (its first character, a pattern for the rest), its hyphens and
    apostrophes optional ("o'neill" ~ "oneill", "o neill")."""
    pieces = [p for p in _PIECES.split(word) if p]
    pattern = OPT_SEP.join(re.escape(p) for p in pieces)
    return pieces[0][0], pattern[len(re.escape(pieces[0][0])):]


def _words(words: list[str], sep: str = SEP) -> tuple[str, str]:
    first, rest = _word(words[0])
    return first, rest + "".join(sep + _pattern(w) for w in words[1:])


def _pattern(word: str) -> str:
    first, rest = _word(word)
    return re.escape(first) + rest


def _joined(parts: list[tuple[str, str]], sep: str, last: str) -> Fragment:
    """Fragments' parts (first character, rest) one after the other with ``sep`` between."""
    first, rest = parts[0]
    body = rest + "".join(sep + re.escape(f) + r for f, r in parts[1:])
    return Fragment(first, _left(first) + body + _right(last))


def _long_enough(word: str) -> bool:
    if _UNSPACED.search(word):
        return len(word) >= MIN_CJK_TOKEN
    return sum(c.isalnum() for c in word) >= MIN_TOKEN and word not in PARTICLES


def _clean_words(text: str) -> list[str]:
    return [w for w in (_TRIM.sub("", w) for w in fold(text).split()) if w]


def name_words(value: str) -> list[tuple[list[str], list[str]]]:
    """Per component group of a PN value: its folded family words and its given + middle words
    (prefix and suffix components are left out)."""
    out = []
    for group in value.split("="):
        parts = group.split("^")
        if len(parts) == 1 and "," in parts[0]:  # "Garcia, Zoe": family, given
            parts = parts[0].split(",", 1)
        elif len(parts) == 1:  # one component: the family name in PS3.5, often "GIVEN FAMILY"
            words = parts[0].split()
            if len(words) > 1:
                parts = [words[-1], " ".join(words[:-1])]
        family = _clean_words(parts[0])
        others = [w for p in parts[1:3] for w in _clean_words(p)]
        if family or others:
            out.append((family, others))
    return out


def name_fragments(value: str) -> Iterator[Fragment]:
    """The forms of one PN value: words alone, the name in any order, initials with family."""
    for family, others in name_words(value):
        for word in family + others:
            pieces = [p for p in _PIECES.split(word) if p]
            for piece in pieces if len(pieces) > 1 else []:
                if _long_enough(piece):
                    yield _literal(piece)
            if _long_enough(word) or (len(pieces) > 1 and _long_enough("".join(pieces))):
                yield _joined([_word(word)], "", word[-1])
        yield from _combinations(family, others)


def _combinations(family: list[str], others: list[str]) -> Iterator[Fragment]:
    if not family:
        return
    fam = _words(family)
    if not others:
        if len(family) > 1:
            yield _joined([fam], "", family[-1][-1])
        return
    given = _words(others)
    yield _joined([fam, given], SEP, others[-1][-1])
    yield _joined([given, fam], SEP, family[-1][-1])
    initials = [(w[0], "") for w in others if w[0].isalnum()]
    initial_forms = [[i] for i in initials]
    if len(initials) > 1:
        initial_forms.append(initials)
    parts = [p for w in family for p in w.split("-") if p and p not in PARTICLES]
    targets = [(fam, family[-1][-1])] + [(_word(p), p[-1]) for p in parts if len(parts) > 1]
    for target, target_last in targets:
        for g in others:
            yield _joined([target, _word(g)], SEP, g[-1])
            yield _joined([_word(g), target], SEP, target_last)
        for form in initial_forms:
            yield _joined([*form, target], r"\.?[\W_]*", target_last)
            yield _initial_after(target, form)


def _initial_after(target: tuple[str, str], form: list[tuple[str, str]]) -> Fragment:
    """"GARCIA Z." / "GARCIA ZM": the family name, then the initials, each with an optional dot."""
    first, rest = target
    body = rest + SEP + r"\.?[\W_]*".join(re.escape(i) for i, _ in form) + r"\.?" + WORD_R
    return Fragment(first, _left(first) + body)


def id_fragments(value: str) -> Iterator[Fragment]:
    """An ID with or without leading zeros and separators; long digit runs inside it alone."""
    core = "".join(c for c in fold(value) if c.isalnum())
    if len(core) < MIN_ID:
        return
    yield from _spaced(core)
    for run in _DIGITS.findall(core):
        if len(run.lstrip("0")) >= MIN_ID_DIGIT_RUN and run != core:
            yield from _spaced(run)


def _spaced(core: str) -> Iterator[Fragment]:
    """The characters of ``core`` with one optional separator between each two, after any
    number of zeros (written or not, whatever the stored ID has); nothing when what is left
    without its zeros is shorter than an ID (``MIN_ID`` characters: "000000", "0012")."""
    stripped = core.lstrip("0")
    if len(stripped) < MIN_ID:
        return  # zeros and a few digits: a placeholder or a counter, not an ID
    body = OPT_SEP + OPT_SEP.join(re.escape(c) for c in stripped[1:])
    yield Fragment(stripped[0], _left(stripped[0]) + body[len(OPT_SEP):] + _right(core[-1]))
    if stripped[0].isdigit():  # with any number of leading zeros and a separator after them
        rest = rf"0*{OPT_SEP}{re.escape(stripped[0])}{body}"
        yield Fragment("0", DIGIT_AFTER_FIRST + rest + _right(core[-1]))


_PHONE_SEP = r"[\s().\-/]*"


def phone_fragments(value: str) -> Iterator[Fragment]:
    """A telephone number's digits with any separators; its last ten and seven digits too, with
    or without a trunk prefix 0 ("+44 (0)1632 960123" ~ "01632 960123") or a "+"."""
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) < MIN_PHONE:
        return
    for tail in sorted({digits, digits[-10:], digits[-7:]}):
        body = _PHONE_SEP.join(tail)
        yield Fragment(tail[0], DIGIT_AFTER_FIRST + body[1:] + DIGIT_R)
        yield Fragment("0", DIGIT_AFTER_FIRST + _PHONE_SEP + body + DIGIT_R)
        yield Fragment("+", rf"\s*(?:0{_PHONE_SEP})?" + body + DIGIT_R)


def phrase_fragments(value: str) -> Iterator[Fragment]:
    """The words of a phrase in order with any separators between them, and each of its
    distinctive words alone: a word of four letters or more that is not a word every address
    or institution has (:data:`GENERIC_PLACE_WORDS`), or a number of five digits or more (a
    postal code). "Hospital Universitario Santa Leocadia" is found as "Leocadia", "Calle de los
    Almendrales 17" as "Almendrales"."""
    words = _WORDS.findall(fold(value))
    if sum(len(w) for w in words) < MIN_PHRASE:
        return
    text = words[0]
    middle = "".join(r"[\W_]*" + re.escape(w) for w in words[1:])
    yield _literal(text, middle, words[-1][-1])
    for word in words if len(words) > 1 else []:
        if _distinctive(word):
            yield _literal(word)


def _distinctive(word: str) -> bool:
    if word.isdigit():
        return len(word) >= MIN_ID_DIGIT_RUN
    if _UNSPACED.search(word):
        return len(word) >= MIN_CJK_TOKEN
    return sum(c.isalpha() for c in word) >= MIN_PHRASE and word not in GENERIC_PLACE_WORDS


def address_parts(value: str) -> list[str]:
    """The parts of an address (PS3.3: lines separated by ^, commas or line breaks)."""
    return [p.strip() for p in re.split(r"[\^,;\n\r]+", value) if p.strip()]


_DATE_SEP = r"(?:\s*[-/.]\s*|\s+)"
_ORDINAL = r"(?:st|nd|rd|th|er|o|º|\.)?"
_GAP = r"[\s\-/.,]*(?:de\s+)?"


def _number(n: int) -> list[str]:
    """A day or month as written: with and without its zero (each a literal to start with)."""
    return [f"{n:02d}", str(n)] if n < 10 else [str(n)]


def date_fragments(value: str) -> Iterator[Fragment]:
    """The written forms of a YYYYMMDD date."""
    try:
        day = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        return
    y4, y2 = f"{day.year:04d}", f"{day.year % 100:02d}"
    mm, dd = f"{day.month:02d}", f"{day.day:02d}"
    m = f"0?{day.month}" if day.month < 10 else mm
    d = f"0?{day.day}" if day.day < 10 else dd
    year = f"(?:{y4}|{y2})"
    month = "(?:" + "|".join(_MONTHS[day.month - 1]) + r")\.?"
    yield _literal(y4 + mm + dd)
    yield _literal(dd + mm + y4)
    yield _literal(y4, f"{_DATE_SEP}{m}{_DATE_SEP}{d}", "0")
    for day_text in _number(day.day):
        yield _literal(day_text, f"{_DATE_SEP}{m}{_DATE_SEP}{year}", "0")
        yield _literal(day_text, f"{_ORDINAL}{_GAP}{month}{_GAP}{year}", "0")
    if day.day != day.month:
        for month_text in _number(day.month):
            yield _literal(month_text, f"{_DATE_SEP}{d}{_DATE_SEP}{year}", "0")
    for name in _MONTHS[day.month - 1]:
        yield _literal(name, rf"\.?{_GAP}{d}{_ORDINAL},?{_GAP}{year}", "0")
        yield _literal(name, rf"\.?{_GAP}{y4}", "0")
    yield _literal(y4, f"{_GAP}{month}{_GAP}{d}", "0")


# How German and Scandinavian keyboards without the letter write it (Müller ~ Mueller).
_TRANSLITERATED = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "AE", "Ö": "OE",
                                 "Ü": "UE", "å": "aa", "Å": "AA", "ø": "oe", "Ø": "OE"})


def transliterated(value: str) -> str:
    """``value`` with ä ö ü å ø written as two letters (folding writes them as one)."""
    return value.translate(_TRANSLITERATED)


def fragments(kind: str, values: Iterable[str]) -> Iterator[Fragment]:
    """The fragments of every value of one kind ("name", "id", "phone", "phrase", "date");
    names and phrases also as written with ä ö ü å ø transliterated (MUELLER, OESTERGAARD)."""
    make = _MAKERS[kind]
    for value in values:
        yield from make(value)
        if kind in ("name", "phrase"):
            other = transliterated(value)
            if other != value:
                yield from make(other)


def compile_fragments(found: Iterable[Fragment]) -> re.Pattern[str] | None:
    """One pattern of every fragment, grouped by first character (longest rest first)."""
    groups: dict[str, set[str]] = defaultdict(set)
    for fragment in found:
        groups[fragment.first].add(fragment.rest)
    if not groups:
        return None
    branches = []
    for first in sorted(groups):
        rests = sorted(groups[first], key=lambda r: (-len(r), r))
        branches.append(re.escape(first) + _hoisted(rests))
    return re.compile("|".join(branches))


def _hoisted(rests: list[str]) -> str:
    """The alternation of ``rests``, with the boundary they all start with checked once."""
    for boundary in (WORD_AFTER_FIRST, DIGIT_AFTER_FIRST):
        if all(r.startswith(boundary) for r in rests):
            return boundary + "(?:" + "|".join(r[len(boundary):] for r in rests) + ")"
    return "(?:" + "|".join(rests) + ")"


_MAKERS = {
    "name": name_fragments,
    "id": id_fragments,
    "phone": phone_fragments,
    "phrase": phrase_fragments,
    "date": date_fragments,
}
