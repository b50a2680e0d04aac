"""deid-gateway: a store-and-forward DICOM gateway that de-identifies on the way through."""

__version__ = "0.1.0"
