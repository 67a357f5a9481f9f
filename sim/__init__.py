"""peerpods-conformance: the peer pods reference implementation and the targets it is compared with."""

#: The suite release; the catalogue's ``since`` names the release each requirement entered.
__version__ = "0.3.0"
