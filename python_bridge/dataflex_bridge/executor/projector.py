"""Seeded random projections of per-sample gradients, reproducible on every machine.

Both projectors map a flat vector g ∈ R^P (the concatenation of the trainable parameters' gradients, in
`named_parameters` order) to R^d with E[<Rg, Rh>] = <g, h>, and are applied block by block (one block per
parameter), so no dense P × d matrix ever exists for large P:

* ``dense``: Rademacher, R[i, j] = ±1/√d. Generated in row chunks of each block; the chunks' packed signs
  (2 bits per entry) are cached up to a byte budget and expanded to float32 by a table gather at each use.
* ``sparse`` (default): a sparse JL transform (Kane–Nelson block construction). Coordinate i goes to
  ``sparsity`` buckets, one per segment of d/s columns, with signs ±1/√s; applied as a CSR [d × block] @ G^T
  product, a gather per output column rather than an atomic scatter-add. Its inner-product variance equals the
  dense projector's, and it costs O(n·P·s) instead of O(n·P·d): the default (bench/results/projector.md).

Every sign and bucket is a function of (seed, coordinate, column) through a counter-based hash computed with
integer tensor arithmetic, never torch's RNG (whose CPU and CUDA streams differ; trak/DataFlex draw from CUDA's
Philox, so their projections cannot be reproduced elsewhere). R is therefore bit-identical on any device and in
any process; projected values agree to float rounding (GEMM summation order is the backend's). It depends only
on the flat coordinate index, not on how the vector is split into blocks. The spec, in 32-bit words, with
fmix = murmur3's finaliser and φ = 0x9E3779B9:

    h = fmix(fmix(fmix(seed_lo ^ tag) ^ seed_hi) ^ i_lo) ^ i_hi     (tag: dense 0x6A09E667, sparse 0xBB67AE85)
    a, b = fmix(h), fmix(h ^ 0x3C6EF372)
    word(i, w) = fmix(a ^ (w+1)·φ) ^ b
    dense:  R[i, 32w + t] = (1 − 2·bit_t(word(i, w))) / √d
    sparse: for k < s, h_k = word(i, k): bucket k·(d/s) + ((h_k & 0x7FFFFFFF)·(d/s) >> 31), value ±1/√s by bit 31
            (d not divisible by s: bucket ((h_k & 0x7FFFFFFF)·d >> 31))

32-bit products are split into 16-bit halves so int64 never overflows (defined arithmetic on every backend).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import torch

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_TAG = {"dense": 0x6A09E667, "sparse": 0xBB67AE85}


@dataclass(frozen=True)
class ProjectorArgs:
    dim: int
    seed: int
    kind: Literal["dense", "sparse"] = "sparse"
    # Sparse: nonzeros per input coordinate.
    sparsity: int = 4
    # Dense: elements of R generated per chunk (rows = chunk_elems // dim), bounds the transient memory.
    chunk_elems: int = 1 << 24
    # Memory for reusing generated matrices across calls (0 disables caching).
    cache_bytes: int = 512 << 20


# ----------------------------------------------------------------------------------------------------- hashing


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for x in [0, 2^32): 16-bit halves of c keep every int64 product below 2^49."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + ((x * hi) & 0xFFFF) * 65536) & _M32


def _fmix32(h: torch.Tensor) -> torch.Tensor:
    """murmur3's finaliser: a bijection on 32-bit words with full avalanche."""
    h = h ^ (h >> 16)
    h = _mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = _mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def _row_keys(seed: int, tag: int, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent 32-bit keys per coordinate index (int64 tensor, any size)."""
    seed = int(seed) & ((1 << 64) - 1)
    h = _fmix32(torch.full_like(index, (seed & _M32) ^ tag))
    h = _fmix32(h ^ (seed >> 32))
    h = _fmix32(h ^ (index & _M32))
    h = h ^ ((index >> 32) & _M32)
    # b from the same state through a different input: not a function of a that a word could cancel.
    return _fmix32(h), _fmix32(h ^ 0x3C6EF372)


def _words(seed: int, tag: int, index: torch.Tensor, count: int) -> torch.Tensor:
    """[len(index), count] hash words; word (i, w) = fmix(a_i ^ w·φ) ^ b_i.

    The outer xor with a second key b_i means two coordinates whose a-keys happen to line up share no run of
    words, so distinct rows of R are independent-looking rather than shifted copies.
    """
    a, b = _row_keys(seed, tag, index)
    w = _mul32(torch.arange(1, count + 1, device=index.device, dtype=torch.int64), _GOLDEN)
    return _fmix32(a[:, None] ^ w[None, :]) ^ b[:, None]


# ------------------------------------------------------------------------------------------------ generators


def dense_sign_groups(seed: int, start: int, rows: int, dim: int, device=None) -> torch.Tensor:
    """Signs of R[start:start+rows, :dim], packed 16 per int32 [rows, ceil(dim/16)].

    Bit t of hash word w is column 32w + t (1 = negative); group k holds bits 16(k%2).. of word k//2.
    """
    index = torch.arange(start, start + rows, device=device, dtype=torch.int64)
    words = _words(seed, _TAG["dense"], index, (dim + 31) // 32)
    shifts = torch.tensor([0, 16], device=device, dtype=torch.int64)
    groups = ((words[..., None] >> shifts) & 0xFFFF).reshape(rows, -1)
    return groups[:, : (dim + 15) // 16].to(torch.int32)


def sign_table(dim: int, device=None) -> torch.Tensor:
    """[65536, 16] float32: row v holds the 16 signs ±1/√dim that the bits of v stand for."""
    bits = (torch.arange(1 << 16, device=device)[:, None] >> torch.arange(16, device=device)) & 1
    scale = 1.0 / math.sqrt(dim)
    return bits.to(torch.float32).mul_(-2.0 * scale).add_(scale)


def expand_signs(groups: torch.Tensor, table: torch.Tensor, dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Packed groups -> float32 [rows, dim] with one gather (the table lookup writes each value exactly once)."""
    rows = groups.shape[0]
    flat = groups.reshape(-1)
    if out is not None:
        out = out[: flat.numel() * 16].view(-1, 16)
    values = torch.index_select(table, 0, flat, out=out) if out is not None else table.index_select(0, flat)
    return values.view(rows, -1)[:, :dim]


def dense_matrix(seed: int, start: int, rows: int, dim: int, device=None) -> torch.Tensor:
    """R[start:start+rows, :] of the dense projector, float32 [rows, dim] (tests and references)."""
    groups = dense_sign_groups(seed, start, rows, dim, device)
    return expand_signs(groups, sign_table(dim, device), dim).contiguous()


def sparse_entries(seed: int, start: int, rows: int, dim: int, sparsity: int, device=None):
    """Buckets (int64 [rows, s]) and values (float32 [rows, s], ±1/√s) of coordinates start..start+rows."""
    s = max(1, min(int(sparsity), dim))
    index = torch.arange(start, start + rows, device=device, dtype=torch.int64)
    h = _words(seed, _TAG["sparse"], index, s)
    low = h & 0x7FFFFFFF
    if dim % s == 0:
        # One bucket per segment: the s entries of a coordinate never collide (Kane–Nelson).
        seg = dim // s
        offset = torch.arange(s, device=device, dtype=torch.int64) * seg
        bucket = offset[None, :] + ((low * seg) >> 31)
    else:
        bucket = (low * dim) >> 31
    scale = 1.0 / math.sqrt(s)
    values = (h >> 31).to(torch.float32).mul_(-2.0 * scale).add_(scale)
    return bucket, values


def sparse_transpose_csr(seed: int, start: int, rows: int, dim: int, sparsity: int, device=None) -> torch.Tensor:
    """R[start:start+rows]^T as a CSR [dim, rows] matrix: each output column gathers its coordinates."""
    bucket, values = sparse_entries(seed, start, rows, dim, sparsity, device)
    s = bucket.shape[1]
    flat = bucket.reshape(-1)
    order = torch.sort(flat, stable=True).indices  # stable: columns stay ascending inside each CSR row
    counts = torch.bincount(flat, minlength=dim)
    crow = torch.zeros(dim + 1, dtype=torch.int64, device=device)
    crow[1:] = torch.cumsum(counts, 0)
    col = torch.div(order, s, rounding_mode="floor")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, values.reshape(-1)[order], size=(dim, rows))


# ------------------------------------------------------------------------------------------------- projector


class Projector:
    """Applies one seeded projection to per-sample gradient blocks; owns its cache of generated matrices."""

    def __init__(self, args: ProjectorArgs, sizes: Sequence[int], device=None):
        if args.dim < 1:
            raise ValueError(f"projection dim must be >= 1, got {args.dim}")
        if args.kind not in ("dense", "sparse"):
            raise ValueError(f"projector must be 'dense' or 'sparse', got {args.kind!r}")
        self.args = args
        self.sizes = [int(n) for n in sizes]
        self.offsets = [0]
        for n in self.sizes:
            self.offsets.append(self.offsets[-1] + n)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._cache: dict[tuple[int, int], torch.Tensor] = {}
        self._cached_bytes = 0
        self._table: torch.Tensor | None = None
        self._buffer: torch.Tensor | None = None

    @property
    def total(self) -> int:
        return self.offsets[-1]

    def project(self, blocks: Sequence[torch.Tensor]) -> torch.Tensor:
        """Σ_b blocks[b] @ R_b for blocks[b] of shape [n, sizes[b]] (any float dtype) -> float32 [n, dim]."""
        if len(blocks) != len(self.sizes):
            raise ValueError(f"expected {len(self.sizes)} blocks, got {len(blocks)}")
        n = blocks[0].shape[0] if blocks else 0
        out = torch.zeros(n, self.args.dim, dtype=torch.float32, device=self.device)
        for b, g in enumerate(blocks):
            self.add_block(out, b, g)
        return out

    def project_flat(self, flat: torch.Tensor) -> torch.Tensor:
        """The same projection of already-concatenated vectors [n, P]."""
        return self.project([flat[:, s:e] for s, e in zip(self.offsets[:-1], self.offsets[1:])])

    def add_block(self, out: torch.Tensor, b: int, g: torch.Tensor) -> None:
        g = g.reshape(g.shape[0], -1).to(device=self.device, dtype=torch.float32)
        if g.shape[1] != self.sizes[b]:
            raise ValueError(f"block {b}: expected {self.sizes[b]} columns, got {g.shape[1]}")
        if self.args.kind == "dense":
            self._add_dense(out, b, g)
        else:
            self._add_sparse(out, b, g)

    # -- dense: row chunks of R_b; their packed signs are cached (2 bits per entry), the floats never are

    def _add_dense(self, out: torch.Tensor, b: int, g: torch.Tensor) -> None:
        dim = self.args.dim
        step = max(1, self.args.chunk_elems // dim)
        if self._table is None:
            self._table = sign_table(dim, self.device)
        # One reused buffer: a fresh multi-MB allocation per chunk costs more in page faults than the gather.
        width = (dim + 15) // 16 * 16
        if self._buffer is None or self._buffer.numel() < step * width:
            self._buffer = torch.empty(step * width, dtype=torch.float32, device=self.device)
        base = self.offsets[b]
        for r0 in range(0, g.shape[1], step):
            rows = min(step, g.shape[1] - r0)
            key = (base + r0, rows)
            groups = self._cache.get(key)
            if groups is None:
                groups = dense_sign_groups(self.args.seed, base + r0, rows, dim, self.device)
                self._store(key, groups)
            out.addmm_(g[:, r0 : r0 + rows], expand_signs(groups, self._table, dim, self._buffer))

    # -- sparse: CSR of R_b^T, cached whole per block

    def _add_sparse(self, out: torch.Tensor, b: int, g: torch.Tensor) -> None:
        key = (self.offsets[b], self.sizes[b])
        csr = self._cache.get(key)
        if csr is None:
            csr = sparse_transpose_csr(
                self.args.seed, self.offsets[b], self.sizes[b], self.args.dim, self.args.sparsity, self.device
            )
            self._store(key, csr)
        out.add_(torch.sparse.mm(csr, g.t().contiguous()).t())

    def _store(self, key: tuple[int, int], value: torch.Tensor) -> bool:
        size = _nbytes(value)
        if self._cached_bytes + size > self.args.cache_bytes:
            return False
        self._cache[key] = value
        self._cached_bytes += size
        return True

    def clear(self) -> None:
        self._cache.clear()
        self._cached_bytes = 0
        self._table = self._buffer = None


def _nbytes(t: torch.Tensor) -> int:
    if t.layout == torch.sparse_csr:
        return sum(x.numel() * x.element_size() for x in (t.crow_indices(), t.col_indices(), t.values()))
    return t.numel() * t.element_size()
