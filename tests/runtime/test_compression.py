"""The 16-bit wire codec: bfloat16 rounding against an independent nearest-value oracle, float16
against numpy, exactness of decode, and the one-line errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpigrad.runtime.compression import (bfloat16_bits, bfloat16_values, check_wire_dtype, decode, encode,
                                         overflow_message, round_to_wire)


def nearest_bfloat16_oracle(x):
    """Candidates: bits truncated to 16 (toward zero) and the next code away from zero; the nearer
    one in float64, ties to the even code; inf when the magnitude passes the largest bfloat16 by
    half an ulp or more (IEEE overflow under round-to-nearest)."""
    bits = int(np.float32(x).view(np.uint32))
    low = bits >> 16
    high = low + 1
    value = float(np.float32(x))
    as_float = lambda code: float(np.uint32(code << 16).view(np.float32))
    if (high & 0x7FFF) >= 0x7F80:  # the next code is inf: compare against the would-be next power
        exp_bits = (low & 0x7F80) >> 7
        boundary = (2.0 - 2.0 ** -8) * 2.0 ** (exp_bits - 127)  # midpoint between max bf16 and 2^128
        return (low & 0x8000) | 0x7F80 if abs(value) >= boundary else low
    a, b = abs(value - as_float(low)), abs(value - as_float(high))
    if a < b or (a == b and low % 2 == 0):
        return low
    return high


finite_floats = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=400, deadline=None)
@given(st.lists(finite_floats, min_size=1, max_size=40))
def test_bfloat16_rounds_to_nearest_even_like_the_oracle(values):
    x = np.array(values, np.float32)
    codes = bfloat16_bits(x)
    assert codes.tolist() == [nearest_bfloat16_oracle(v) for v in values]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_bfloat16_on_any_bit_pattern(bits):
    x = np.array([bits], np.uint32).view(np.float32)
    code = int(bfloat16_bits(x)[0])
    back = bfloat16_values(np.array([code], np.uint16))[0]
    if np.isnan(x[0]):
        assert np.isnan(back) and (code >> 15) == (bits >> 31)  # a NaN stays a NaN of the same sign
    elif np.isinf(x[0]):
        assert back == x[0]
    else:
        assert code == nearest_bfloat16_oracle(x[0])


def test_bfloat16_ties_go_to_even_and_overflow_to_inf():
    one = np.float32(1.0)
    ulp = np.float32(2.0 ** -7)  # bfloat16 spacing at 1
    halfway_even = one + ulp / 2  # between 1 (even code 0x3F80) and 1 + ulp (odd): rounds down
    halfway_odd = one + ulp + ulp / 2  # between 1 + ulp (odd) and 1 + 2 ulp (even): rounds up
    codes = bfloat16_bits(np.array([halfway_even, halfway_odd, 3.4e38, -3.4e38, 0.0, -0.0], np.float32))
    assert codes.tolist() == [0x3F80, 0x3F82, 0x7F80, 0xFF80, 0x0000, 0x8000]


def test_decode_is_exact_and_rounding_is_idempotent():
    codes = np.arange(2**16, dtype=np.uint16)
    for kind in ("bfloat16", "float16"):
        values = decode(codes, kind)
        finite = np.isfinite(values)
        again = encode(values[finite], kind)
        assert np.array_equal(again, codes[finite]), kind  # every finite code survives a round trip


def test_float16_is_numpys_cast_and_round_to_wire_in_place():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(1000) * 100).astype(np.float32)
    assert np.array_equal(encode(x, "float16").view(np.float16), x.astype(np.float16))
    y = x.copy()
    assert round_to_wire(y, "float16") is y
    assert np.array_equal(y, x.astype(np.float16).astype(np.float32))
    z = x.copy()
    round_to_wire(z, "float32")
    assert np.array_equal(z, x)


def test_float16_overflow_is_inf_and_the_message_says_so():
    codes = encode(np.array([70000.0, -1e6, 65504.0], np.float32), "float16")
    assert decode(codes, "float16").tolist() == [np.inf, -np.inf, 65504.0]
    message = overflow_message("float16", float("inf"))
    assert "\n" not in message and "bfloat16" in message and "65504" in message
    assert overflow_message("float16", 1.0) is None and overflow_message("bfloat16", float("inf")) is None


def test_bad_wire_dtype_is_one_line():
    assert check_wire_dtype("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match=r"^grad_comm_dtype='int8' is not one of 'float32', 'bfloat16', 'float16'$"):
        check_wire_dtype("int8")
