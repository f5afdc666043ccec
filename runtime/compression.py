"""Gradients on the wire in 16 bits (grad_comm_dtype): bfloat16 or float16 codes, summed in float32.

bfloat16 is the top half of a float32 (sign, 8 exponent bits, 7 mantissa bits), rounded to
nearest, ties to even; float16 is IEEE binary16 (numpy's own cast, also round-to-nearest-even).
An all-reduce sends a code per element (half the bytes of float32) and sums decoded float32s:
rank q receives chunk q of every rank's codes (an all-to-all), adds them in rank order in
float32, rounds the sum once and every rank gathers every chunk (an all-gather). Each rank sends
2 (P-1)/P * 2 bytes per element, half of what a ring all-reduce of float32 sends, and the result
is rounded once, not at every hop as a 16-bit all-reduce would (PyTorch DDP's fp16/bf16
compress hooks and Horovod's Compression.fp16 cast, all-reduce in 16 bits and cast back).
"""

import numpy as np

WIRE_DTYPES = ("float32", "bfloat16", "float16")
FLOAT16_MAX = 65504.0


def check_wire_dtype(name):
    """The grad_comm_dtype name, or one clear line saying what is allowed."""
    if name not in WIRE_DTYPES:
        allowed = ", ".join(repr(d) for d in WIRE_DTYPES)
        raise ValueError(f"grad_comm_dtype={name!r} is not one of {allowed}")
    return name


def bfloat16_bits(x, out=None):
    """uint16 codes of float32 x rounded to bfloat16: (bits + 0x7FFF + lsb) >> 16, NaN kept NaN."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    wide = (bits >> 16) & 1
    wide += 0x7FFF
    wide += bits  # wraps only for NaNs with the sign set (>= 0xFFFF8001): fixed below with the others
    wide >>= 16
    out = np.empty(bits.shape, np.uint16) if out is None else out
    np.copyto(out, wide, casting="unsafe")
    nan = np.isnan(x)
    if nan.any():
        out[nan] = (bits[nan] >> 16).astype(np.uint16) | 0x0040  # quiet NaN of the same sign
    return out


def bfloat16_values(codes, out=None):
    """float32 values of bfloat16 codes: the code in the top 16 bits, zeros below (exact)."""
    out = np.empty(codes.shape, np.float32) if out is None else out
    np.left_shift(codes, 16, out=out.view(np.uint32), dtype=np.uint32)
    return out


def encode(x, kind, out=None):
    """uint16 wire codes of float32 x."""
    if kind == "bfloat16":
        return bfloat16_bits(x, out)
    out = np.empty(x.shape, np.uint16) if out is None else out
    with np.errstate(over="ignore"):  # beyond 65504 is inf: the run stops saying so (see overflow_message)
        np.copyto(out.view(np.float16), x, casting="unsafe")
    return out


def decode(codes, kind, out=None):
    """float32 values of uint16 wire codes (exact: every code is a float32)."""
    if kind == "bfloat16":
        return bfloat16_values(codes, out)
    out = np.empty(codes.shape, np.float32) if out is None else out
    np.copyto(out, codes.view(np.float16))
    return out


def round_to_wire(x, kind):
    """x <- the wire dtype's value of x, in place (a no-op for float32)."""
    if kind != "float32" and x is not None and x.size:
        flat = x.reshape(-1)
        decode(encode(flat, kind), kind, out=flat)
    return x


def overflow_message(kind, norm):
    """The one line that stops a run whose float16 gradients left float16's range (else None)."""
    if kind != "float16" or np.isfinite(norm):
        return None
    return (f"gradient norm {norm} with grad_comm_dtype = \"float16\": a gradient beyond float16's range "
            f"(|g| > {FLOAT16_MAX:g}) becomes inf on the wire, or a gradient was already non-finite; use "
            "grad_comm_dtype = \"bfloat16\" (float32's range) or \"float32\"")


class WireAllreduce:
    """Starts 16-bit sums of float32 buffers over comm (what BucketReducer calls instead of Iallreduce)."""

    def __init__(self, comm, kind):
        self.comm, self.kind = comm, check_wire_dtype(kind)
        self._buffers = {}

    def __call__(self, grad):
        """grad <- sum over ranks of grad (float32 buffer, in place); returns a request (Test, Wait)."""
        if self.comm.size == 1:
            round_to_wire(grad, self.kind)
            return _Done()
        return _TwoPhaseSum(self, grad)

    def buffer(self, key, count):
        """A uint16 work buffer kept across steps (a fresh array page-faults every time); keyed by the
        bucket's view (buckets keep theirs), since buckets of one size may be in flight together."""
        found = self._buffers.get(key)
        if found is None or found.size != count:
            found = self._buffers[key] = np.empty(count, np.uint16)
        return found


class _TwoPhaseSum:
    """All-to-all of codes, local float32 sum of this rank's chunk, all-gather of the summed codes.

    The codes are padded to P equal chunks: MPICH's Allgather of equal blocks took 1/8 to 1/2.4 of the
    time of its in-place Allgatherv of the same 3.7 MB of codes (world 2, shared memory, three runs on
    a loaded 2-core machine)."""

    def __init__(self, wire, grad):
        from mpi4py import MPI
        comm, size = wire.comm, wire.comm.size
        self.wire, self.grad, self.mpi = wire, grad, comm.mpi
        self.chunk = -(-grad.size // size)
        self.codes = wire.buffer(("codes", id(grad)), size * self.chunk)
        encode(grad, wire.kind, out=self.codes[:grad.size])
        self.codes[grad.size:] = 0
        self.received = wire.buffer(("received", id(grad)), size * self.chunk)
        self.request = self.mpi.Ialltoall([self.codes, MPI.UINT16_T], [self.received, MPI.UINT16_T])
        self.phase = 1

    def Test(self):
        if self.request.Test():
            self._advance()
        return self.phase == 3

    def Wait(self):
        while self.phase < 3:
            self.request.Wait()
            self._advance()

    def _advance(self):
        if self.phase == 1:
            self._sum_my_chunk()
        elif self.phase == 2:
            decode(self.codes[:self.grad.size], self.wire.kind, out=self.grad)
            self.phase = 3

    def _sum_my_chunk(self):
        """float32 sum over ranks (in rank order) of my chunk, rounded once, then gathered by everyone."""
        from mpi4py import MPI
        kind, lo = self.wire.kind, self.wire.comm.rank * self.chunk
        rows = self.received.reshape(self.wire.comm.size, self.chunk)
        total = decode(rows[0], kind)
        scratch = np.empty_like(total)
        for row in rows[1:]:
            total += decode(row, kind, out=scratch)
        encode(total, kind, out=self.codes[lo:lo + self.chunk])
        self.request = self.mpi.Iallgather(MPI.IN_PLACE, [self.codes, MPI.UINT16_T])
        self.phase = 2


class _Done:
    def Test(self):
        return True

    def Wait(self):
        pass
