"""Numpy-side utilities of the CMPC port: image resizing, batches, metrics, DenseCRF, visualisation.

`MovingAverage` is re-exported because the original scripts import it as
`from util import MovingAverage`.
"""

from .functions import MovingAverage  # noqa: F401
