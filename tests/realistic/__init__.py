"""A realistic, seeded generator of synthetic DICOM folders with an exact ground truth.

``generate(root, seed)`` writes a folder such as a hospital sends to a research gateway (CT, MR,
Enhanced MR, PET, US single and multi-frame, SC, SR, KOS, GSPS, RT Structure Set, Plan and Dose,
SEG, WSI label and overview; several character sets; several transfer syntaxes) and returns a
:class:`Truth` that says where each identifying value was planted, in which written form, and
which harmless text should survive which profile. Synthetic people only.
"""

from realistic.folder import KINDS, build, generate
from realistic.paths import generic, resolve
from realistic.truth import PROFILES, Harmless, InstanceTruth, PatientTruth, Truth, Variant

__all__ = ["KINDS", "PROFILES", "Harmless", "InstanceTruth", "PatientTruth", "Truth", "Variant",
           "build", "generate", "generic", "resolve"]
