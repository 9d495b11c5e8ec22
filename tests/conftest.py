"""Suite-wide settings: one torch thread per test process.

The suite runs as two pytest-xdist workers on two cores; more threads per process only adds
hand-off overhead on the tiny tensors the tests use.
"""

import torch

torch.set_num_threads(1)
