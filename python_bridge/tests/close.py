"""Float comparisons with a tolerance that scales with the magnitude of the values compared.

Two computations of the same quantity that differ only in float summation order (batching, chunking, another
CPU's kernels) differ by a few ulps of the LARGEST values summed, not of each element, so the tolerance is
`rel × max|desired|` for every element. Checks meant to be bitwise (the same computation twice) stay exact and do
not use this.
"""

from __future__ import annotations

import numpy as np


def _array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def scaled_tolerance(desired, rel: float) -> float:
    return rel * float(np.abs(_array(desired)).max(initial=0.0))


def close_scaled(actual, desired, rel: float) -> bool:
    a, d = _array(actual), _array(desired)
    return a.shape == d.shape and bool(np.all(np.abs(a - d) <= scaled_tolerance(d, rel)))


def assert_close_scaled(actual, desired, rel: float, err_msg: str = "") -> None:
    """Every |actual − desired| ≤ rel × max|desired| (shapes must match)."""
    a, d = _array(actual), _array(desired)
    tol = scaled_tolerance(d, rel)
    np.testing.assert_allclose(a, d, rtol=0, atol=tol, err_msg=f"{err_msg} (tolerance {rel:g} × max|desired| = {tol:.3g})")
