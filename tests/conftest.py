"""Set-up shared by every test module."""
import torch

import basicsr_snn  # noqa: F401  (fixes BasicSR for today's torchvision before any test imports it)

# Tests use tiny tensors, which gain nothing from threads; on a loaded machine spinning OpenMP
# workers make each step many times slower.
torch.set_num_threads(1)
