"""Initdata transport and validation (spec section 5), as the pod VM applies them."""

from __future__ import annotations

import base64
import gzip
import hashlib
import time
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import ConformanceInputError
from sim.peerpods import initdata
from sim.peerpods.initdata import InitdataError

TOML = b"""algorithm = "sha384"
version = "0.1.0"

[data]
"aa.toml" = '''
[token_configs.kbs]
url = "http://trustee.example:8080"
'''
"cdh.toml" = "socket = 'unix:///run/confidential-containers/cdh.sock'"
"""


def test_encode_is_gzip_then_base64_on_one_line() -> None:
    encoded = initdata.encode(TOML)
    assert "\n" not in encoded
    assert gzip.decompress(base64.b64decode(encoded, validate=True)) == TOML


def test_encode_is_deterministic() -> None:
    assert initdata.encode(TOML) == initdata.encode(TOML)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=4096))
def test_round_trip(payload: bytes) -> None:
    assert initdata.decode(initdata.encode(payload)) == payload


def test_decode_accepts_the_shell_pipeline_output_and_line_breaks() -> None:
    shell_style = base64.encodebytes(gzip.compress(TOML)).decode()  # 76-column lines, like base64 without -w0
    assert "\n" in shell_style
    assert initdata.decode(shell_style) == TOML


def test_one_padding_character_short_is_refused_saying_so() -> None:
    encoded = initdata.encode(TOML + b"#")
    while not encoded.endswith("="):
        encoded = initdata.encode(TOML + b"#" * (len(encoded) % 7 + 2))
    short = encoded[:-1]
    with pytest.raises(InitdataError, match=r"not a multiple of 4 \(1 '=' padding character\(s\) missing"):
        initdata.decode(short)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("H4sI AAAA", "' ' at position 4 is not in the standard alphabet"),
        ("H4sI-AAA", "'-' at position 4"),
        ("QQ=A", "padding at position 2"),
        ("QUFBQQ===", "padding"),
    ],
)
def test_bad_base64(text: str, message: str) -> None:
    with pytest.raises(InitdataError, match=message):
        initdata.decode(text)


def test_not_gzip() -> None:
    with pytest.raises(InitdataError, match=r"not gzip-compressed .*1f8b"):
        initdata.decode(base64.b64encode(TOML).decode())


def test_corrupt_and_truncated_gzip() -> None:
    compressed = bytearray(gzip.compress(TOML))
    compressed[-5] ^= 0xFF  # breaks the length/CRC trailer
    with pytest.raises(InitdataError, match="not valid gzip"):
        initdata.decode(base64.b64encode(bytes(compressed)).decode())
    truncated = gzip.compress(TOML)[:-12]
    with pytest.raises(InitdataError, match="truncated"):
        initdata.decode(base64.b64encode(truncated).decode())


def test_concatenated_gzip_members_are_one_stream() -> None:
    joined = gzip.compress(TOML[:20]) + gzip.compress(TOML[20:])
    assert initdata.decode(base64.b64encode(joined).decode()) == TOML


def test_trailing_garbage_after_gzip() -> None:
    with pytest.raises(InitdataError, match="trailing data"):
        initdata.decode(base64.b64encode(gzip.compress(TOML) + b"junk").decode())


def test_exactly_the_bound_is_accepted() -> None:
    payload = b"a" * initdata.MAX_DECODED_BYTES
    assert len(initdata.decode(initdata.encode(payload))) == initdata.MAX_DECODED_BYTES


def test_gzip_bomb_is_refused_quickly_in_bounded_memory() -> None:
    bomb_size = 256 << 20  # 256 MiB of zeros, about 250 KiB compressed
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    compressed = b"".join(compressor.compress(block) for _ in range(bomb_size >> 20)) + compressor.flush()
    encoded = base64.b64encode(compressed).decode()
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(
        InitdataError, match=f"exceeds MAX_DECODED_BYTES \\({initdata.MAX_DECODED_BYTES} bytes\\)"
    ):
        initdata.decode(encoded)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 8 * initdata.MAX_DECODED_BYTES


def test_bomb_split_over_members_is_still_bounded() -> None:
    member = gzip.compress(bytes(initdata.MAX_DECODED_BYTES // 2 + 1))
    with pytest.raises(InitdataError, match="MAX_DECODED_BYTES"):
        initdata.decode(base64.b64encode(member * 3).decode())


# ----------------------------------------------------------------- parse


def test_parse_valid_document() -> None:
    document = initdata.parse(TOML)
    assert document.algorithm == "sha384"
    assert document.version == "0.1.0"
    assert set(document.data) == {"aa.toml", "cdh.toml"}
    assert document.toml == TOML


def test_parse_without_data_table_is_allowed() -> None:
    assert initdata.parse(b'algorithm = "sha256"\nversion = "0.1.0"\n').data == {}


def test_unknown_top_level_keys_are_ignored() -> None:
    assert initdata.parse(b'algorithm = "sha512"\nversion = "0.1.0"\nextra = 1\n').algorithm == "sha512"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (b"\xff\xfe", "src: not UTF-8"),
        (b"algorithm = ", "src: not valid TOML"),
        (b'version = "0.1.0"\n', "missing 'algorithm'"),
        (b'algorithm = "sha256"\nversion = 1\n', "'version' must be a string"),
        (b'algorithm = "md5"\nversion = "0.1.0"\n', "unknown algorithm 'md5'"),
        (b'algorithm = "SHA256"\nversion = "0.1.0"\n', "unknown algorithm 'SHA256'"),
        (b'algorithm = 256\nversion = "0.1.0"\n', "'algorithm' must be a string"),
        (b'algorithm = "sha256"\nversion = "0.1.0"\ndata = "x"\n', "'data' must be a table"),
        (
            b'algorithm = "sha256"\nversion = "0.1.0"\n[data]\n"aa.toml" = 1\n',
            "data.'aa.toml' must be a string",
        ),
        (
            b'algorithm = "sha256"\nversion = "0.1.0"\n[data.nested]\nx = "y"\n',
            "data.'nested' must be a string",
        ),
    ],
)
def test_parse_errors(toml: bytes, message: str) -> None:
    with pytest.raises(InitdataError, match=message):
        initdata.parse(toml, source="src")


def test_initdata_error_is_an_input_error() -> None:
    assert issubclass(InitdataError, ConformanceInputError)


# ----------------------------------------------------------------- digest


def test_digest_uses_the_documents_algorithm_over_the_exact_bytes() -> None:
    assert initdata.digest(TOML) == hashlib.sha384(TOML).hexdigest()
    # a trailing newline is part of the bytes: the digest changes with it
    assert initdata.digest(TOML.rstrip(b"\n")) != initdata.digest(TOML)


def test_digest_override() -> None:
    assert initdata.digest(TOML, "sha256") == hashlib.sha256(TOML).hexdigest()
    assert initdata.digest(b"anything", "sha512") == hashlib.sha512(b"anything").hexdigest()
    with pytest.raises(InitdataError, match="unknown algorithm 'sha1'"):
        initdata.digest(TOML, "sha1")


def test_digest_validates_when_no_override() -> None:
    with pytest.raises(InitdataError):
        initdata.digest(b"not = toml = really")


# ----------------------------------------------------------------- dummy and select


def test_dummy_is_upstreams_document() -> None:
    document = initdata.parse(initdata.DUMMY_TOML)
    assert (document.algorithm, document.version, document.data) == ("sha256", "0.1.0", {"aa.toml": ""})
    assert initdata.decode(initdata.DUMMY_ENCODED) == initdata.DUMMY_TOML
    assert initdata.digest(initdata.DUMMY_TOML) == (
        "adb48cc14fea9403d3d51f3b5f5068fd4d80445a14e94f1b3d5dbabaad66478d"
    )


@pytest.mark.parametrize(
    ("annotations", "cm", "expected"),
    [
        ({initdata.ANNOTATION: "POD"}, {"INITDATA": "CM"}, "POD"),
        ({initdata.ANNOTATION: ""}, {"INITDATA": "CM"}, "CM"),
        ({}, {"INITDATA": "CM"}, "CM"),
        (None, {"INITDATA": "CM"}, "CM"),
        ({initdata.ANNOTATION: "POD"}, None, "POD"),
        ({}, {"INITDATA": ""}, None),
        (None, None, None),
        ({"other": "x"}, {"OTHER": "y"}, None),
    ],
)
def test_select_precedence(
    annotations: dict[str, str] | None, cm: dict[str, str] | None, expected: str | None
) -> None:
    assert initdata.select(annotations, cm) == expected


def test_non_canonical_padding_bits_are_accepted_like_caa() -> None:
    """CAA decodes with Go's (non-strict) StdEncoding, which ignores the unused trailing bits."""
    encoded = initdata.encode(b"x = 1\n")
    assert encoded.endswith("A=")
    assert initdata.decode(encoded[:-2] + "B=") == b"x = 1\n"


@pytest.mark.parametrize("header", [b'algorithm = "sha256"\n', b'algorithm = "sha256"\nversion = "0.2.0"\n'])
def test_version_is_not_checked_as_in_caa(header: bytes) -> None:
    document = initdata.parse(header + b'[data]\n"aa.toml" = "x"\n')
    assert document.algorithm == "sha256" and document.data == {"aa.toml": "x"}
