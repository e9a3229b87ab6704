"""Import the plugin before anything imports BasicSR: it fixes BasicSR for today's torchvision."""
import basicsr_snn  # noqa: F401
