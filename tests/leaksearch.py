"""The tests' own search for identifying text in DICOM files, independent of the gateway's code.

Every text value of a file (file meta, every depth, private elements, UN decoded with the file's
character set) is folded: Unicode NFKD with combining marks removed, the letters NFKD does not
split written as ASCII (ß ss, ø o, ł l, æ ae, œ oe, đ d, ı i), case folded (final sigma too),
and every run of characters that are not letters or digits made one space. A needle (a name
token, a whole written form of a name, ID or date) is folded the same way and is found when its
words occur in a value as consecutive whole words; needles in CJK scripts are found anywhere.
"""

# ruff: noqa: RUF001, RUF002 - names and words in Cyrillic, Greek and Turkish on purpose

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom import Dataset
from pydicom.charset import decode_bytes
from pydicom.multival import MultiValue

_SPECIAL = str.maketrans({"ß": "ss", "ẞ": "ss", "ø": "o", "Ø": "o", "ł": "l", "Ł": "l",
                          "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "đ": "d", "Đ": "d",
                          "ı": "i"})
_NOT_WORD = re.compile(r"[\W_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST",
                      "TM", "UC", "UI", "UR", "UT", "UN"})
MIN_LETTERS = 3  # a name token needs at least this many letters (2 for CJK)


def fold(text: str) -> str:
    """``text`` folded as the module docstring says (words joined by single spaces)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    folded = bare.translate(_SPECIAL).casefold().translate(_SPECIAL)
    return _NOT_WORD.sub(" ", folded).strip()


def is_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def token_needles(tokens: Iterable[str]) -> set[str]:
    """Name and place tokens worth searching: 3 letters or more, 2 for CJK."""
    out = set()
    for token in tokens:
        for word in fold(token).split():
            letters = sum(ch.isalpha() for ch in word)
            if letters >= MIN_LETTERS or (is_cjk(word) and len(word) >= 2):
                out.add(word)
    return out


class Needles:
    """A set of folded needles, searched as consecutive whole words (CJK: as substrings)."""

    def __init__(self, needles: Iterable[str]) -> None:
        self.words: set[str] = set()
        self.cjk: set[str] = set()
        self.longest = 1
        for raw in needles:
            n = fold(raw)
            if not n:
                continue
            if is_cjk(n):
                self.cjk.add(n.replace(" ", ""))
            else:
                self.words.add(n)
                self.longest = max(self.longest, n.count(" ") + 1)

    def find(self, text: str) -> list[str]:
        """The needles found in ``text``."""
        folded = fold(text)
        found = []
        words = folded.split()
        for i in range(len(words)):
            for n in range(1, min(self.longest, len(words) - i) + 1):
                gram = " ".join(words[i:i + n])
                if gram in self.words:
                    found.append(gram)
        if self.cjk and is_cjk(folded):
            squeezed = folded.replace(" ", "")
            found += [n for n in self.cjk if n in squeezed]
        return found


@dataclass(frozen=True)
class TextValue:
    path: str  # in the truth's path syntax (realistic.paths)
    vr: str
    text: str


def _encodings(ds: Dataset, inherited: list[str]) -> list[str]:
    from pydicom.charset import convert_encodings

    if "SpecificCharacterSet" in ds:
        value = ds.SpecificCharacterSet
        values = list(value) if isinstance(value, MultiValue | list) else [value]
        return convert_encodings([v or "ISO_IR 6" for v in values] or ["ISO_IR 6"])
    return inherited


def _name(ds: Dataset, tag: int) -> str:
    group, elem = tag >> 16, tag & 0xFFFF
    if group % 2 and 0x1000 <= elem <= 0xFFFF:
        creator_tag = (group << 16) | (elem >> 8)
        creator = ds[creator_tag].value if creator_tag in ds else "?"
        if isinstance(creator, bytes):
            creator = creator.decode("latin-1").strip()
        return f'({group:04X},"{str(creator).strip()}",{elem & 0xFF:02X})'
    keyword = ds[tag].keyword
    return keyword or f"({group:04X},{elem:04X})"


def _decode(value: object, vr: str, encodings: list[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        if vr not in ("UN",) and vr not in TEXT_VRS:
            return []
        return [decode_bytes(value, encodings, set())]
    if isinstance(value, MultiValue | list | tuple):
        return [t for v in value for t in _decode(v, vr, encodings)]
    return [str(value)]


def texts(ds: Dataset, prefix: str = "", encodings: list[str] | None = None
          ) -> Iterator[TextValue]:
    """Every text value of ``ds`` at every depth (file meta included at the top), decoded with
    the character set in force; UN values are decoded as text too."""
    enc = _encodings(ds, encodings or ["iso8859"])
    if not prefix and getattr(ds, "file_meta", None) is not None:
        for elem in ds.file_meta:
            if elem.VR in TEXT_VRS:
                for t in _decode(elem.value, elem.VR, ["iso8859"]):
                    yield TextValue(elem.keyword or str(elem.tag), elem.VR, t)
    for elem in ds:
        path = prefix + _name(ds, int(elem.tag))
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or ()):
                yield from texts(item, f"{path}[{i}]>", enc)
        elif elem.VR in TEXT_VRS:
            for t in _decode(elem.value, elem.VR, enc):
                yield TextValue(path, elem.VR, t)


def uid_hits(data: bytes, root: bytes, originals: frozenset[str]) -> list[str]:
    """Original UIDs (all under ``root``) found anywhere in the raw bytes of a file."""
    hits = []
    for m in re.finditer(re.escape(root) + rb"[0-9.]*", data):
        uid = m.group().decode("ascii")
        if uid in originals:
            hits.append(uid)
    return hits
