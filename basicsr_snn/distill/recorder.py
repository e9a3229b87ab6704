"""Forward-hook recorders: the features of named submodules, for teacher and student alike.

A hint point is named by its module path in ``model.named_modules()`` (``decoder1``,
``decoder_level1``, ``decoder1.0.neuron2``), so any BasicSR arch can serve without edits.
"""
import difflib

import torch
from torch import nn
from spikingjelly.activation_based import neuron

from basicsr_snn.utils.checks import check_choice
from basicsr_snn.utils.hooks import ForwardHooks

# How a recorded module output becomes a feature map:
#   none      the output itself (ANN modules: (B, C, H, W))
#   mean      mean over the leading time axis of a multi-step output (T, B, C, H, W): for a
#             spiking neuron module this is its firing rate
#   membrane  mean over time of a spiking neuron's membrane potential v_seq (T, B, C, H, W)
REDUCTIONS = ('none', 'mean', 'membrane')
# Neurons that can keep their membrane potentials (store_v_seq); SimpleBaseNode cannot.
MEMBRANE_NEURON_TYPES = (neuron.BaseNode, )


def find_module(model: nn.Module, path: str) -> nn.Module:
    """The submodule of ``model`` at ``path``; the error lists the valid paths.

    Args:
        model (nn.Module): Network to search.
        path (str): Dotted module path as in ``model.named_modules()``.
    """
    modules = dict(model.named_modules())
    modules.pop('', None)
    if path in modules:
        return modules[path]
    close = difflib.get_close_matches(str(path), list(modules), n=3)
    hint = f' Did you mean {close}?' if close else ''
    raise ValueError(f'{type(model).__name__} has no module {path!r}.{hint} '
                     f'Valid module paths: {list(modules)}')


class FeatureRecorder(ForwardHooks):
    """Keeps, by name, the output of chosen submodules of one network during ``with`` blocks.

    Module paths are resolved by :meth:`add`, so a wrong path fails at construction; hooks are
    attached only inside ``with recorder:``, so forwards elsewhere (validation, EMA updates)
    record nothing. Features survive the block until :meth:`clear`; a module called several
    times in one forward keeps its last output. Recording does not detach: student features keep
    their graph for the hint losses (a teacher run under ``torch.no_grad()`` has none).

    Example::

        recorder = FeatureRecorder(student)
        recorder.add('dec1', 'decoder1', reduce='mean')
        with recorder:
            student(lq)
        recorder.features['dec1']   # (B, C, H, W): decoder1's output averaged over T

    Args:
        model (nn.Module): Network whose submodules are recorded (the bare module, not a
            DistributedDataParallel wrapper, so that paths carry no ``module.`` prefix).
    """

    def __init__(self, model):
        super().__init__(model)
        self.features = {}
        self._points = {}

    def add(self, name: str, path: str, reduce: str = 'none') -> None:
        """Record the output of the module at ``path`` as ``features[name]``.

        Args:
            name (str): Key of the feature in :attr:`features`.
            path (str): Module path in the model.
            reduce (str): One of ``REDUCTIONS`` (see the module's top). ``'membrane'`` switches
                on ``store_v_seq`` of the neuron so that spikingjelly keeps ``v_seq``.
        """
        check_choice('reduce', reduce, REDUCTIONS)
        if name in self._points:
            raise ValueError(f'feature name {name!r} is recorded twice')
        module = find_module(self.model, path)
        if reduce == 'membrane':
            if not isinstance(module, MEMBRANE_NEURON_TYPES):
                raise ValueError(f'reduce: membrane needs a spiking neuron module, but {path!r} is a '
                                 f'{type(module).__name__}')
            module.store_v_seq = True
        self._points[name] = (module, path, reduce)

    def hook_for(self, name, module):
        points = [(key, path, reduce) for key, (recorded, path, reduce) in self._points.items() if recorded is module]
        if not points:
            return None

        def record(module, _inputs, output):
            for key, path, reduce in points:
                self.features[key] = self._reduce(output, reduce, module, path)

        return 'forward', record

    @staticmethod
    def _reduce(output, reduce, module, path):
        if reduce == 'membrane':
            output = module.v_seq
        if not isinstance(output, torch.Tensor):
            raise TypeError(f'module {path!r} returned a {type(output).__name__}; only modules '
                            f'returning one tensor can be recorded')
        if reduce == 'none':
            return output
        if output.ndim < 3:
            raise ValueError(f'reduce: {reduce} needs a multi-step output (T, B, ...) from {path!r}, '
                             f'got shape {tuple(output.shape)}')
        return output.mean(0)

    def clear(self) -> None:
        """Drop the recorded features (and the graphs they hold)."""
        self.features.clear()
