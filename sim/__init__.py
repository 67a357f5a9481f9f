"""peerpods-conformance: the peer pods reference implementation and the targets it is compared with."""

__version__ = "0.1.0"
