"""peerpods-conformance: a reference implementation of peer pods on IBM Z and the targets it is compared with."""

__version__ = "0.1.0"
