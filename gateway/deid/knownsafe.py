"""Public attributes in no PS3.15 table that are known to be safe to keep, and the VR classes
that the default policy for such attributes keeps.

PS3.15 Table E.1-1 lists the attributes that may identify; a public attribute that it does not
list follows the profile's ``unknown_public`` policy (documented in ``docs/deid.md``):

* ``keep_known_safe`` (the default): keep it when its VR cannot carry free text (numbers, coded
  strings, binary data, tags; UIDs of classes and coding schemes; other UIDs are replaced), or
  when it is in :data:`KNOWN_SAFE_PUBLIC` below; remove every other one (names, free text, dates,
  unknown-VR data) unless the instance's IOD requires it, in which case it gets a zero-length
  (Type 2) or dummy (Type 1) value, as the compound code X/Z/D would;
* ``remove``: keep only what :data:`KNOWN_SAFE_PUBLIC` lists (and sequences, walked);
* ``keep``: keep everything (not safe: for audits with ``explain`` only).

The list holds technical text attributes that describe equipment, acquisition or coding and that
IODs require (Type 1 or 2), so that removing them would break the output's IOD.
"""

from __future__ import annotations

# Keywords of public text-VR attributes that are not in Table E.1-1 and are safe to keep.
KNOWN_SAFE_PUBLIC: frozenset[str] = frozenset(
    {
        # Code Sequence Macro (PS3.3 Table 8.8-1): coded concepts, not patient data.
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "LongCodeValue",
        "URNCodeValue",
        "MappingResourceName",
        "CodingSchemeName",
        "CodingSchemeResponsibleOrganization",
        "CodingSchemeExternalID",
        # Equipment and software (General Equipment Module, Type 2 Manufacturer).
        "Manufacturer",
        "ManufacturerModelName",
        "SoftwareVersions",
        # Acquisition technique.
        "ConvolutionKernel",
        "FilterType",
        "ImagedNucleus",
        "SequenceName",
        "TransmitCoilName",
        "ReceiveCoilName",
        "PlateType",
        "TransducerData",
        "AcquisitionDeviceProcessingCode",
        "ProcessingFunction",
        "PulseSequenceName",
        "ContrastBolusRoute",
        "PositionReferenceIndicator",
        # Pixel value transformations and display.
        "RescaleType",
        "LUTExplanation",
        "WindowCenterWidthExplanation",
        # Multi-frame dimensions and segmentation labels (Type 1).
        "DimensionDescriptionLabel",
        "SegmentAlgorithmName",
        "SegmentLabel",
        "MultiplexGroupLabel",
        "ChannelLabel",
        # SR document completion state.
        "CompletionFlagDescription",
        # RT beam names (what a treatment-planning study needs).
        "BeamName",
        # Private Data Element Characteristics (PS3.3 C.12.1.1.7), read by Retain Safe Private.
        "PrivateCreatorReference",
        # De-identification markers themselves (PS3.3 C.12.1).
        "DeidentificationMethod",
    }
)

# VRs that cannot carry free text: kept by the default policy when no table lists the attribute.
SAFE_VRS: frozenset[str] = frozenset(
    {
        "AT", "CS", "DS", "FD", "FL", "IS", "OB", "OD", "OF", "OL", "OV", "OW",
        "SL", "SS", "SV", "UL", "US", "UV",
        # VRs pydicom reports for elements whose VR depends on context.
        "US or SS", "OB or OW", "US or OW", "US or SS or OW",
    }
)

# Text VRs: free text, names, dates, AE titles, URLs and unknown data.
TEXT_VRS: frozenset[str] = frozenset(
    {"AE", "AS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT", "UN"}
)
DATE_VRS: frozenset[str] = frozenset({"DA", "DT", "TM"})
