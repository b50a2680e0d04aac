"""Synthetic identities (patients, staff, institutions) and the ways hospital data writes them.

Every person, number and place here is made up. Each patient template carries its own script and
the character sets its instances may use; the variant functions give the forms in which real
systems write the same value: without diacritics, in another case, reordered, with initials,
family name alone, IDs without leading zeros or separators, dates in written forms.
"""

# ruff: noqa: RUF001, RUF002 - names and words in Cyrillic, Greek and Turkish on purpose

from __future__ import annotations

import datetime as dt
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# Letters that NFKD does not decompose, written the way an ASCII-only system writes them.
_ASCII_LETTERS = str.maketrans({
    "ß": "ss", "ẞ": "SS", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "æ": "ae", "Æ": "AE",
    "œ": "oe", "Œ": "OE", "đ": "d", "Đ": "D", "ı": "i",
})


def strip_accents(text: str) -> str:
    """``text`` without diacritics, as a keyboard without them writes it (Ø -> O, ß -> ss, Ł -> L).
    Letters of other scripts stay (Cyrillic Ё -> Е, Greek ά -> α)."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", kept.translate(_ASCII_LETTERS))


def has_accents(text: str) -> bool:
    return strip_accents(text) != text


@dataclass(frozen=True)
class Person:
    """A person name: DICOM components (as the PN value writes them) and the natural-case
    spelling people type in free text; ideographic and phonetic groups for Japanese."""

    family: str
    given: str = ""
    middle: str = ""
    prefix: str = ""
    family_text: str = ""  # natural case, e.g. "García" for "GARCÍA"
    given_text: str = ""
    ideographic: str = ""  # "山田^太郎"
    phonetic: str = ""  # "やまだ^たろう"

    def pn(self) -> str:
        """The PN value (PS3.5 6.2.1): family^given^middle^prefix, then = groups."""
        parts = [self.family, self.given, self.middle, self.prefix]
        while parts and not parts[-1]:
            parts.pop()
        value = "^".join(parts)
        if self.ideographic or self.phonetic:
            value += "=" + self.ideographic
        if self.phonetic:
            value += "=" + self.phonetic
        return value

    @property
    def fam(self) -> str:
        return self.family_text or self.family

    @property
    def giv(self) -> str:
        text = self.given_text or self.given
        middle = self.middle.title() if self.given_text and self.middle else self.middle
        return f"{text} {middle}".strip()

    def words(self) -> tuple[str, ...]:
        """The name's words as written in the PN value (split at ^ = spaces hyphens
        apostrophes): the identifying tokens of this name."""
        out: list[str] = []
        for part in (self.family, self.given, self.middle, self.ideographic, self.phonetic):
            for piece in part.replace("^", " ").replace("-", " ").replace("'", " ").split():
                out.append(piece)
        return tuple(out)


@dataclass(frozen=True)
class Template:
    """One synthetic patient with everything identifying that a hospital records."""

    key: str
    name: Person
    sex: str
    birth_date: str
    patient_id: str  # MRN with leading zeros and separators
    issuer: str
    other_id: str
    address: str  # PN-like address: street^town^country
    address_words: tuple[str, ...]  # its identifying words (street name, town)
    street: str
    phone: str
    phone_national: str
    institution: str
    institution_short: str
    institution_words: tuple[str, ...]
    institution_address: str
    department: str
    staff: dict[str, Person]  # role -> person: referring, performing, operator, reading, requesting
    charsets: tuple[str, ...]  # SpecificCharacterSet values (backslash-joined) its files may use
    station: str
    accession_prefix: str

    def staff_words(self) -> tuple[str, ...]:
        return tuple(w for p in self.staff.values() for w in p.words())


def _p(family: str, given: str = "", family_text: str = "", given_text: str = "",
       **kw: str) -> Person:
    return Person(family=family, given=given, family_text=family_text, given_text=given_text,
                  **kw)


TEMPLATES: tuple[Template, ...] = (
    Template(
        key="es-garcia", sex="F", birth_date="19840709",
        name=_p("GARCÍA", "ZOË", "García", "Zoë"),
        patient_id="00123-4567", issuer="HUSL", other_id="X1234567L",
        address="Calle de los Almendrales 17^28041 Getafe^ES",
        address_words=("Almendrales", "Getafe"), street="Calle de los Almendrales 17",
        phone="+34 916 550 417", phone_national="916 550 417",
        institution="Hospital Universitario Santa Leocadia", institution_short="Santa Leocadia",
        institution_words=("Leocadia",), institution_address="Avenida Valdeolmos 3, Getafe",
        department="Radiodiagnóstico",
        staff={"referring": _p("PÉREZ", "ANDRÉS", "Pérez", "Andrés", prefix="DR."),
               "performing": _p("NÚÑEZ", "INÉS", "Núñez", "Inés"),
               "operator": _p("ROJO", "PILAR", "Rojo", "Pilar"),
               "reading": _p("ECHEVARRÍA", "TOMÁS", "Echevarría", "Tomás"),
               "requesting": _p("QUIROGA", "BELÉN", "Quiroga", "Belén")},
        charsets=("ISO_IR 100", "ISO_IR 192"), station="CTLEO01", accession_prefix="HSL",
    ),
    Template(
        key="de-mueller", sex="M", birth_date="19570311",
        name=_p("MÜLLER", "JÜRGEN", "Müller", "Jürgen"),
        patient_id="0004829137", issuer="KSH", other_id="A123456780",
        address="Lindenhöhe 42^79111 Freiburg-Wiehre^DE",
        address_words=("Lindenhöhe", "Wiehre"), street="Lindenhöhe 42",
        phone="+49 761 409 2231", phone_national="0761 409 2231",
        institution="Klinikum Sonnenhügel", institution_short="Sonnenhügel",
        institution_words=("Sonnenhügel",), institution_address="Sonnenhügelweg 1, Freiburg",
        department="Radiologie",
        staff={"referring": _p("WEIß", "DIETER", "Weiß", "Dieter", prefix="DR."),
               "performing": _p("SCHÄFER", "ANJA", "Schäfer", "Anja"),
               "operator": _p("KÖHLER", "SVEN", "Köhler", "Sven"),
               "reading": _p("BRÄUTIGAM", "ULRIKE", "Bräutigam", "Ulrike"),
               "requesting": _p("HÜBNER", "FALK", "Hübner", "Falk")},
        charsets=("ISO_IR 100", "ISO_IR 192"), station="MRSON3T", accession_prefix="KSH",
    ),
    Template(
        key="dk-ostergaard", sex="M", birth_date="19610224",
        name=_p("ØSTERGÅRD", "SØREN", "Østergård", "Søren"),
        patient_id="240261-0097", issuer="CPR", other_id="0097-44-218",
        address="Æblehaven 9^8260 Viby^DK",
        address_words=("Æblehaven", "Viby"), street="Æblehaven 9",
        phone="+45 8612 4470", phone_national="8612 4470",
        institution="Fjordvang Sygehus", institution_short="Fjordvang",
        institution_words=("Fjordvang",), institution_address="Fjordvangsvej 12, Viby",
        department="Billeddiagnostik",
        staff={"referring": _p("KJÆRGAARD", "METTE", "Kjærgaard", "Mette"),
               "performing": _p("BØGH", "LASSE", "Bøgh", "Lasse"),
               "operator": _p("HØJLUND", "TRINE", "Højlund", "Trine"),
               "reading": _p("DAMGÅRD", "ESBEN", "Damgård", "Esben"),
               "requesting": _p("LYKKEGÅRD", "ASTRID", "Lykkegård", "Astrid")},
        charsets=("ISO_IR 100", "ISO_IR 192"), station="PETFJV", accession_prefix="FJV",
    ),
    Template(
        key="pl-lukaszewicz", sex="F", birth_date="19790930",
        name=_p("ŁUKASZEWICZ", "MAŁGORZATA", "Łukaszewicz", "Małgorzata"),
        patient_id="00089-1123", issuer="SZW", other_id="79093012345",
        address="ul. Żurawiniec 14^31-418 Kraków^PL",
        address_words=("Żurawiniec",), street="ul. Żurawiniec 14",
        phone="+48 12 614 27 93", phone_national="12 614 27 93",
        institution="Szpital Wojewódzki im. Brzezińskiej", institution_short="Brzezińskiej",
        institution_words=("Brzezińskiej",), institution_address="ul. Łąkowa 3, Kraków",
        department="Zakład Radiologii",
        staff={"referring": _p("WRÓBEL", "PAWEŁ", "Wróbel", "Paweł"),
               "performing": _p("ŻAK", "KRZYSZTOF", "Żak", "Krzysztof"),
               "operator": _p("SZCZĘSNA", "EDYTA", "Szczęsna", "Edyta"),
               "reading": _p("GRZEŚKOWIAK", "BOŻENA", "Grześkowiak", "Bożena"),
               "requesting": _p("ŚLUSARCZYK", "TOMASZ", "Ślusarczyk", "Tomasz")},
        charsets=("ISO_IR 101", "ISO_IR 192"), station="USWOJ2", accession_prefix="SWB",
    ),
    Template(
        key="de-strassburg", sex="F", birth_date="19920115",
        name=_p("STRAẞBURG", "HEIDRUN", "Straßburg", "Heidrun"),
        patient_id="0000771-204", issuer="KSH", other_id="B998877665",
        address="Grüßauer Weg 5^01309 Dresden-Striesen^DE",
        address_words=("Grüßauer", "Striesen"), street="Grüßauer Weg 5",
        phone="+49 351 882 0457", phone_national="0351 882 0457",
        institution="Elbhang-Klinik Loschwitz", institution_short="Elbhang-Klinik",
        institution_words=("Elbhang", "Loschwitz"), institution_address="Elbhangstraße 2, Dresden",
        department="Strahlentherapie",
        staff={"referring": _p("GROẞKOPF", "UWE", "Großkopf", "Uwe"),
               "performing": _p("REIẞIG", "CLAUDIA", "Reißig", "Claudia"),
               "operator": _p("FLEIẞNER", "JONAS", "Fleißner", "Jonas"),
               "reading": _p("SÜẞMUTH", "GERLINDE", "Süßmuth", "Gerlinde"),
               "requesting": _p("WEIẞENBORN", "KAI", "Weißenborn", "Kai")},
        charsets=("ISO_IR 192",), station="LINAC2", accession_prefix="EKL",
    ),
    Template(
        key="ie-oneill", sex="F", birth_date="19700402",
        name=_p("O'NEILL-SMITH", "MARY ANN", "O'Neill-Smith", "Mary Ann"),
        patient_id="000-4471-82", issuer="SBH", other_id="6284319JA",
        address="14 Kilbrannagh Close^Ballyfermot^Dublin 10",
        address_words=("Kilbrannagh", "Ballyfermot"), street="14 Kilbrannagh Close",
        phone="+353 1 623 4471", phone_national="01 623 4471",
        institution="St Brigid's Hospital Inchicore", institution_short="St Brigid's",
        institution_words=("Brigid", "Inchicore"), institution_address="Inchicore Road, Dublin",
        department="Radiology",
        staff={"referring": _p("MACGIOLLA", "CIARAN", "MacGiolla", "Ciaran", prefix="DR"),
               "performing": _p("FITZGERALD-BYRNE", "AOIFE", "FitzGerald-Byrne", "Aoife"),
               "operator": _p("DUNPHY", "NIAMH", "Dunphy", "Niamh"),
               "reading": _p("O'DRISCOLL", "EAMONN", "O'Driscoll", "Eamonn"),
               "requesting": _p("COUGHLAN", "ORLA", "Coughlan", "Orla")},
        charsets=("", "ISO_IR 192"), station="CTSBH1", accession_prefix="SBH",
    ),
    Template(
        key="jp-yamada", sex="M", birth_date="19680520",
        name=_p("Yamada", "Tarou", "Yamada", "Tarou", ideographic="山田^太郎",
                phonetic="やまだ^たろう"),
        patient_id="0012-3456", issuer="SKB", other_id="81-3345-0921",
        address="Sakuragaoka 2-14-7^Setagaya-ku^Tokyo",
        address_words=("Sakuragaoka", "Setagaya"), street="Sakuragaoka 2-14-7",
        phone="+81 3 5481 2297", phone_national="03-5481-2297",
        institution="Sakuragaoka Kinen Byouin", institution_short="Kinen Byouin",
        institution_words=("Kinen", "Byouin"), institution_address="Kyodo 1-2, Setagaya",
        department="Houshasenka",
        staff={"referring": _p("Suzuki", "Ichirou", ideographic="鈴木^一郎"),
               "performing": _p("Takahashi", "Hanako", ideographic="高橋^花子"),
               "operator": _p("Kobayashi", "Kenta", ideographic="小林^健太"),
               "reading": _p("Watanabe", "Yumiko", ideographic="渡辺^由美子"),
               "requesting": _p("Inoue", "Satoshi", ideographic="井上^聡")},
        charsets=("\\ISO 2022 IR 87", "ISO_IR 192"), station="MRSKB1", accession_prefix="SKB",
    ),
    Template(
        key="ru-semenova", sex="F", birth_date="19750812",
        name=_p("СЕМЁНОВА", "АЛЁНА", "Семёнова", "Алёна", middle="ПЕТРОВНА"),
        patient_id="000-452-118", issuer="GKB", other_id="112-233-445 95",
        address="ул. Черёмуховая 8^Кострома^RU",
        address_words=("Черёмуховая", "Кострома"), street="ул. Черёмуховая 8",
        phone="+7 4942 31 18 09", phone_national="8 4942 31 18 09",
        institution="Больница Заречья", institution_short="Заречья",
        institution_words=("Заречья",), institution_address="пр. Мира 40, Кострома",
        department="Рентгенология",
        staff={"referring": _p("ВОРОБЬЁВ", "ФЁДОР", "Воробьёв", "Фёдор"),
               "performing": _p("ЖУРАВЛЁВА", "ИННА", "Журавлёва", "Инна"),
               "operator": _p("ЩЕРБАКОВ", "ГЛЕБ", "Щербаков", "Глеб"),
               "reading": _p("ПОЛЯКОВА", "ЗОЯ", "Полякова", "Зоя"),
               "requesting": _p("КИСЕЛЁВ", "ЯРОСЛАВ", "Киселёв", "Ярослав")},
        charsets=("ISO_IR 144", "ISO_IR 192"), station="CTGKB4", accession_prefix="GKB",
    ),
    Template(
        key="gr-papadopoulou", sex="F", birth_date="19880217",
        name=_p("ΠΑΠΑΔΟΠΟΥΛΟΥ", "ΕΛΕΝΗ", "Παπαδοπούλου", "Ελένη"),
        patient_id="0003318-27", issuer="NGA", other_id="17028812345",
        address="Οδός Αμαρύλλιδος 23^Χαλάνδρι^GR",
        address_words=("Αμαρύλλιδος", "Χαλάνδρι"), street="Οδός Αμαρύλλιδος 23",
        phone="+30 210 681 4472", phone_national="210 681 4472",
        institution="Νοσοκομείο Αγίας Θεοδώρας", institution_short="Αγίας Θεοδώρας",
        institution_words=("Θεοδώρας",), institution_address="Λεωφόρος Κηφισίας 12, Αθήνα",
        department="Ακτινολογικό",
        staff={"referring": _p("ΓΕΩΡΓΙΟΥ", "ΝΙΚΟΛΑΟΣ", "Γεωργίου", "Νικόλαος"),
               "performing": _p("ΚΑΡΑΜΑΝΛΗ", "ΔΕΣΠΟΙΝΑ", "Καραμανλή", "Δέσποινα"),
               "operator": _p("ΜΑΥΡΟΜΑΤΗΣ", "ΣΤΑΥΡΟΣ", "Μαυρομάτης", "Σταύρος"),
               "reading": _p("ΖΑΦΕΙΡΙΟΥ", "ΑΘΗΝΑ", "Ζαφειρίου", "Αθηνά"),
               "requesting": _p("ΛΑΜΠΡΑΚΗΣ", "ΟΡΕΣΤΗΣ", "Λαμπράκης", "Ορέστης")},
        charsets=("ISO_IR 126", "ISO_IR 192"), station="MRNGA1", accession_prefix="NGA",
    ),
    Template(
        key="vn-dang", sex="F", birth_date="19900603",
        name=_p("ĐẶNG", "THỊ HƯƠNG", "Đặng", "Thị Hương"),
        patient_id="00056-7781", issuer="BVT", other_id="079190004412",
        address="Hẻm 42 Thượng Hiền^Tân Định^TP HCM",
        address_words=("Thượng", "Hiền", "Tân Định"), street="Hẻm 42 Thượng Hiền",
        phone="+84 28 3820 4471", phone_national="028 3820 4471",
        institution="Bệnh viện Thủ Thiêm", institution_short="Thủ Thiêm",
        institution_words=("Thiêm",), institution_address="Đường Lương Định Của, Thủ Đức",
        department="Chẩn đoán hình ảnh",
        staff={"referring": _p("TRƯƠNG", "VĂN ĐỨC", "Trương", "Văn Đức"),
               "performing": _p("LƯU", "KIM OANH", "Lưu", "Kim Oanh"),
               "operator": _p("PHẠM", "MINH TRÍ", "Phạm", "Minh Trí"),
               "reading": _p("QUÁCH", "THANH TÂM", "Quách", "Thanh Tâm"),
               "requesting": _p("HUỲNH", "BẢO NGỌC", "Huỳnh", "Bảo Ngọc")},
        charsets=("ISO_IR 192",), station="USBVT2", accession_prefix="BVT",
    ),
    Template(
        key="tr-yilmaz", sex="F", birth_date="19820426",
        name=_p("YILMAZ", "IŞIL", "Yılmaz", "Işıl"),
        patient_id="0072-118-40", issuer="ADH", other_id="38204261140",
        address="Çınarlıdere Sokak 11^Kadıköy^İstanbul",
        address_words=("Çınarlıdere", "Kadıköy"), street="Çınarlıdere Sokak 11",
        phone="+90 216 418 2270", phone_national="0216 418 2270",
        institution="Acıbadem Dereboyu Hastanesi", institution_short="Dereboyu",
        institution_words=("Dereboyu",), institution_address="Dereboyu Cad. 4, Kadıköy",
        department="Radyoloji",
        staff={"referring": _p("KARAKUŞ", "ÖMER", "Karakuş", "Ömer"),
               "performing": _p("GÜLTEKİN", "SİBEL", "Gültekin", "Sibel"),
               "operator": _p("AKBIYIK", "ONUR", "Akbıyık", "Onur"),
               "reading": _p("ÇAĞLAYAN", "DİLEK", "Çağlayan", "Dilek"),
               "requesting": _p("ŞAHİNGÖZ", "TUNCAY", "Şahingöz", "Tuncay")},
        charsets=("ISO_IR 148", "ISO_IR 192"), station="SMADH1", accession_prefix="ADH",
    ),
)


# ---------------------------------------------------------------- variant forms


@dataclass(frozen=True)
class Form:
    """One way of writing an identity value, before it is placed somewhere."""

    source: str  # identity field, e.g. "patient.name", "staff.referring", "study.date"
    value: str  # the canonical value (as its DICOM attribute holds it)
    form: str  # the text as written
    kind: str  # variant class, e.g. "name.comma"
    accents: str  # "kept" | "stripped" | "none" (the value has no diacritics)
    case: str  # "as-is" | "upper" | "lower" | "natural"


NAME_KINDS = ("name.pn", "name.family_given", "name.given_family", "name.comma",
              "name.initial_family", "name.family_initial", "name.family", "name.title_family")
IDEOGRAPHIC_KINDS = ("name.ideographic", "name.ideographic_joined", "name.phonetic")
ID_KINDS = ("id.as_is", "id.no_separators", "id.no_leading_zeros", "id.digits_only")
DATE_KINDS = ("date.dicom", "date.iso", "date.dmy_slash", "date.dmy_dot", "date.long",
              "date.mdy_slash")
PHONE_KINDS = ("phone.as_is", "phone.national", "phone.digits")
ADDRESS_KINDS = ("address.street", "address.full")
INSTITUTION_KINDS = ("institution.full", "institution.short")
CASES = ("upper", "lower", "natural")

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def _initials(given: str) -> str:
    return " ".join(f"{w[0]}." for w in given.replace("-", " ").split())


def _case(text: str, case: str) -> str:
    if case == "upper":
        return text.upper()
    if case == "lower":
        return text.lower()
    return text


def name_form(source: str, person: Person, kind: str, case: str, accents: bool) -> Form:
    """``person`` written as variant ``kind`` (one of NAME_KINDS or IDEOGRAPHIC_KINDS)."""
    value = person.pn()
    if kind in IDEOGRAPHIC_KINDS:
        group = person.phonetic if kind == "name.phonetic" else person.ideographic
        fam, _, giv = group.partition("^")
        text = f"{fam}{giv}" if kind == "name.ideographic_joined" else f"{fam} {giv}"
        return Form(source, value, text, kind, "none", "as-is")
    if kind == "name.pn":
        text = value.partition("=")[0]
        case = "as-is"
    else:
        fam, giv = person.fam, person.giv
        text = {
            "name.family_given": f"{fam} {giv}",
            "name.given_family": f"{giv} {fam}",
            "name.comma": f"{fam}, {giv}",
            "name.initial_family": f"{_initials(giv)} {fam}",
            "name.family_initial": f"{fam} {giv[:1]}",
            "name.family": fam,
            "name.title_family": f"Dr. {fam}",
        }[kind]
        text = _case(text, case)
    marks = "none"
    if has_accents(text):
        marks = "kept"
        if accents:
            text, marks = strip_accents(text), "stripped"
    return Form(source, value, text, kind, marks, case)


def id_form(source: str, value: str, kind: str) -> Form:
    """An identifier written with or without its leading zeros and separators."""
    text = value
    if kind in ("id.no_separators", "id.digits_only"):
        text = "".join(c for c in text if c.isalnum())
    if kind in ("id.no_leading_zeros", "id.digits_only"):
        text = text.lstrip("0")
    return Form(source, value, text, kind, "none", "as-is")


def date_form(source: str, value: str, kind: str) -> Form:
    """A DA value (YYYYMMDD) in a common written form."""
    d = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    text = {
        "date.dicom": value,
        "date.iso": d.isoformat(),
        "date.dmy_slash": f"{d.day:02d}/{d.month:02d}/{d.year}",
        "date.dmy_dot": f"{d.day:02d}.{d.month:02d}.{d.year}",
        "date.long": f"{d.day} {_MONTHS[d.month - 1]} {d.year}",
        "date.mdy_slash": f"{d.month:02d}/{d.day:02d}/{d.year}",
    }[kind]
    return Form(source, value, text, kind, "none", "as-is")


def phone_form(source: str, value: str, national: str, kind: str) -> Form:
    text = {"phone.as_is": value, "phone.national": national,
            "phone.digits": "".join(c for c in value if c.isdigit() or c == "+")}[kind]
    return Form(source, value, text, kind, "none", "as-is")


def text_form(source: str, value: str, text: str, kind: str, case: str = "as-is",
              accents: bool = False) -> Form:
    """A place or institution (``text`` is the part of ``value`` written)."""
    text = _case(text, case)
    marks = "none"
    if has_accents(text):
        marks = "kept"
        if accents:
            text, marks = strip_accents(text), "stripped"
    return Form(source, value, text, kind, marks, case)


class Cycler:
    """Deals out every combination of a list in a seeded order before repeating one, so that
    each variant class appears for each patient once enough values are planted."""

    def __init__(self, rng: random.Random, items: Sequence[object]) -> None:
        self.rng = rng
        self.items = list(items)
        self.pending: list[object] = []

    def next(self) -> object:
        if not self.pending:
            self.pending = list(self.items)
            self.rng.shuffle(self.pending)
        return self.pending.pop()
