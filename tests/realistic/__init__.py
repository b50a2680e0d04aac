"""A realistic, seeded generator of synthetic DICOM folders with an exact ground truth.

``generate(root, seed=0, patients=None, ct_slices=2) -> Truth`` writes a folder such as a
hospital sends to a research gateway and returns its :class:`Truth`; ``build(...)`` gives the same
instances in memory with their truth (pixel data not yet encoded). Synthetic people only.

* 11 patients (``patients=n`` takes n of them in a seeded order), each with 3 or 4 studies:
  an RT-planning CT study (CT, RT Structure Set, RT Plan, RT Dose, SEG, GSPS, KOS, Comprehensive
  SR), an MR study (MR, Enhanced MR, Basic Text SR), then US (single and multi-frame), SC and
  Enhanced SR, or PET and Enhanced SR plus a pathology study (WSI LABEL and OVERVIEW).
* Names in Latin with diacritics, Japanese (ISO 2022 IR 87, ideographic and phonetic groups),
  Cyrillic (ISO_IR 144), Greek (ISO_IR 126), Polish (ISO_IR 101), Turkish (ISO_IR 148), UTF-8
  and no character set at all; transfer syntaxes explicit and implicit VR, RLE, JPEG-LS, JPEG
  2000 lossless and JPEG baseline; private blocks that arrive as UN.
* The identity of the patient and of their staff is written into free text the way hospital
  data writes it (see :mod:`realistic.identity` for the variant classes); harmless text is placed
  beside it. :class:`Truth` records each written form (:class:`Variant`) and each harmless phrase
  (:class:`Harmless`) with its attribute path (syntax in :mod:`realistic.paths`; ``resolve``
  finds the element a path names).
"""

from realistic.folder import KINDS, build, generate
from realistic.paths import generic, resolve
from realistic.truth import PROFILES, Harmless, InstanceTruth, PatientTruth, Truth, Variant

__all__ = ["KINDS", "PROFILES", "Harmless", "InstanceTruth", "PatientTruth", "Truth", "Variant",
           "build", "generate", "generic", "resolve"]
