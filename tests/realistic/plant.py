"""Planting: text values assembled from filler, identity forms and harmless words, with a record
of each form and each harmless phrase at its attribute path (the truth)."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.charset import encode_string

from realistic.identity import Form
from realistic.truth import Harmless, Variant

# Longest value of each text VR in characters (PS3.5 Table 6.2-1); PN per component group.
MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "ST": 1024, "LT": 10240,
              "UT": 1 << 20, "UC": 1 << 20, "UN": 1 << 20}

# Which shipped profiles keep (or clean) an attribute instead of removing or replacing it, from
# PS3.15 Table E.1-1 (2024b) and the gateway's documented policy for attributes in no table
# (docs/deid.md: code sequence attributes, Segment Label and Beam Name are on the known-safe
# list; CS values are kept; other text is removed). ``basic`` has no option, ``research`` has
# Clean Descriptors, Clean Structured Content, Clean Graphics and Retain Safe Private.
BOTH = ("basic", "research")
RESEARCH = ("research",)
NONE: tuple[str, ...] = ()
_LEAF = {
    # kept by both: not in E.1-1 and known safe, or a CS
    "CodeMeaning": BOTH, "SegmentLabel": BOTH, "BeamName": BOTH, "ContentLabel": BOTH,
    "SegmentAlgorithmName": BOTH,
    # E.1-1 X, Z or D in Basic, C with Clean Descriptors
    "StudyDescription": RESEARCH, "SeriesDescription": RESEARCH, "ProtocolName": RESEARCH,
    "ImageComments": RESEARCH, "RequestedProcedureDescription": RESEARCH,
    "PerformedProcedureStepDescription": RESEARCH, "ROIName": RESEARCH,
    "ROIDescription": RESEARCH, "ROIObservationLabel": RESEARCH,
    "StructureSetLabel": RESEARCH, "StructureSetName": RESEARCH,
    "StructureSetDescription": RESEARCH, "RTPlanLabel": RESEARCH, "RTPlanName": RESEARCH,
    "RTPlanDescription": RESEARCH, "BeamDescription": RESEARCH,
    "DoseReferenceDescription": RESEARCH, "FractionGroupDescription": RESEARCH,
    "PrescriptionDescription": RESEARCH, "LabelText": RESEARCH,
    "AcquisitionProtocolDescription": RESEARCH, "DerivationDescription": RESEARCH,
    "SpecimenShortDescription": RESEARCH, "SpecimenDetailedDescription": RESEARCH,
    "AdditionalPatientHistory": RESEARCH, "ReasonForTheRequestedProcedure": RESEARCH,
    "FrameComments": RESEARCH,
    # content items: Clean Structured Content / Clean Graphics
    "TextValue": RESEARCH, "UnformattedTextValue": RESEARCH,
}
# Sequences that Basic removes or replaces and the research options clean (E.1-1).
_SEQUENCE_RESEARCH = {"RequestAttributesSequence", "ContentSequence", "GraphicAnnotationSequence",
                      "SpecimenPreparationSequence", "AcquisitionContextSequence"}
# Safe private elements (PS3.15 Table E.3.10-1) that this generator writes text into.
SAFE_PRIVATE = {(0x0019, "GEMS_ACQU_01", 0x9E)}


def kept_by(path: str) -> tuple[str, ...]:
    """The profiles expected to keep text at ``path`` (see the tables above)."""
    parts = [p.split("[")[0] for p in path.split(">")]
    leaf = parts[-1]
    if leaf.startswith("("):
        group, creator, elem = leaf.strip("()").split(",")
        key = (int(group, 16), creator.strip('"'), int(elem, 16))
        return RESEARCH if key in SAFE_PRIVATE else NONE
    kept = _LEAF.get(leaf, NONE)
    if any(p in _SEQUENCE_RESEARCH for p in parts[:-1]):
        kept = tuple(k for k in kept if k in RESEARCH)
    return kept


@dataclass(frozen=True)
class Keep:
    """Harmless text placed in a value: it identifies nobody and should survive."""

    text: str


Part = str | Form | Keep


def join(parts: tuple[Part, ...] | list[Part]) -> str:
    return "".join(p.form if isinstance(p, Form) else p.text if isinstance(p, Keep) else p
                   for p in parts)


class Planter:
    """Collects the truth of one instance while it is built."""

    def __init__(self, encodings: list[str] | None = None) -> None:
        self.encodings = encodings or ["iso8859"]
        self.planted: list[tuple[Form, str, str]] = []
        self.harmless: list[Harmless] = []
        self.identity: dict[tuple[str, str], None] = {}

    def fits(self, vr: str, *parts: Part) -> bool:
        """Whether the value fits its VR in characters and in encoded bytes (dciodvfy and some
        receivers count bytes)."""
        value = join(parts)
        limit = MAX_LENGTH[vr]
        return len(value) <= limit and len(encode_string(value, self.encodings)) <= limit

    def text(self, path: str, vr: str, *parts: Part) -> str:
        """The value made of ``parts``; records every form and harmless phrase at ``path``."""
        value = join(parts)
        if not self.fits(vr, *parts):
            raise ValueError(f"{path}: {value!r} is too long for {vr}")
        for p in parts:
            if isinstance(p, Form):
                self.planted.append((p, path, vr))
            elif isinstance(p, Keep):
                self.harmless.append(Harmless(p.text, path, kept_by(path)))
        return value

    def hold(self, source: str, value: str) -> str:
        """Note that the instance holds identity ``value`` as an attribute; returns it."""
        if value:
            self.identity[(source, value)] = None
        return value

    def variants(self) -> tuple[Variant, ...]:
        held = set(self.identity)
        return tuple(
            Variant(source=f.source, value=f.value, form=f.form, kind=f.kind, accents=f.accents,
                    case=f.case, path=path, vr=vr, local=(f.source, f.value) in held)
            for f, path, vr in self.planted
        )
