"""basicsr-snn: spiking image-restoration networks for BasicSR, distilled from ANN teachers.

Importing the package makes ``import basicsr`` work on today's torchvision (``_compat``'s import
shims, nothing else of BasicSR changes) and registers every ``archs/*_arch.py``,
``models/*_model.py``, ``data/*_dataset.py`` and ``losses/*_loss.py`` in BasicSR's registries,
the way BasicSR registers its own: a new file needs no other edit. The entry points run the
project's own pipeline (:mod:`basicsr_snn.pipeline`); ``basicsr_snn.run`` runs BasicSR's scripts
with ``_compat.apply_pipeline_fixes()``.
"""
import importlib
from pathlib import Path

from basicsr_snn import _compat

__version__ = '0.1.0'

_PACKAGE_ROOT = Path(__file__).resolve().parent
_REGISTERED_SUFFIXES = {'archs': '_arch', 'models': '_model', 'data': '_dataset', 'losses': '_loss'}


def _import_registered_modules():
    _compat.install_import_shims()  # before anything imports basicsr
    for folder, suffix in _REGISTERED_SUFFIXES.items():
        for path in sorted((_PACKAGE_ROOT / folder).glob(f'*{suffix}.py')):
            importlib.import_module(f'basicsr_snn.{folder}.{path.stem}')


_import_registered_modules()
