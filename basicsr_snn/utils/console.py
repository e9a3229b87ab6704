"""What reaches the console: BasicSR's INFO messages go to a file, warnings still show."""
import logging

from basicsr.utils import get_root_logger


def route_basicsr_log(path) -> logging.Logger:
    """Send BasicSR's root logger to ``path`` at INFO (option dumps, network printouts, loading notes);
    its console handlers keep only warnings and errors."""
    logger = get_root_logger(log_level=logging.INFO, log_file=str(path))
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)
    return logger
