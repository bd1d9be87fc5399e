"""figures: the two helpers every part of the bench reads results with."""

import statistics


def med(vals):
    """The median of vals, Nones left out; None when none is left."""
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def g(d, *keys, default=None):
    """d[k1][k2]...: default where a key is missing or a value is None."""
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return default
        d = d[k]
    return d
