"""The options of the Application Level Confidentiality Profile (PS3.15 E.3) and their codes.

Each option has the name used in profiles, the column of Table E.1-1 it selects (generated into
``rules/ps3.15/basic_profile.json`` under that same name) and its code in CID 7050
"De-identification Method" (PS3.16), recorded in De-identification Method Code Sequence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Option(enum.StrEnum):
    """An option of PS3.15 E.3, by the name profiles use."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain_longitudinal_full_dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain_longitudinal_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"
    CLEAN_PIXEL_DATA = "clean_pixel_data"


@dataclass(frozen=True)
class MethodCode:
    """A coded concept of CID 7050 (coding scheme DCM)."""

    value: str
    meaning: str


BASIC_PROFILE_CODE = MethodCode("113100", "Basic Application Confidentiality Profile")

# CID 7050 De-identification Method (PS3.16).
OPTION_CODES: dict[Option, MethodCode] = {
    Option.CLEAN_PIXEL_DATA: MethodCode("113101", "Clean Pixel Data Option"),
    Option.CLEAN_GRAPHICS: MethodCode("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: MethodCode("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: MethodCode("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: MethodCode(
        "113106", "Retain Longitudinal Temporal Information Full Dates Option"
    ),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: MethodCode(
        "113107", "Retain Longitudinal Temporal Information Modified Dates Option"
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: MethodCode(
        "113108", "Retain Patient Characteristics Option"
    ),
    Option.RETAIN_DEVICE_IDENTITY: MethodCode("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: MethodCode("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: MethodCode("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: MethodCode(
        "113112", "Retain Institution Identity Option"
    ),
}

# Options whose columns contradict each other: at most one of each group.
EXCLUSIVE: tuple[frozenset[Option], ...] = (
    frozenset({Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}),
)
