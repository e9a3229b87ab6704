"""Forward hooks that live only inside a ``with`` block, and a network run for evaluation.

* :class:`ForwardHooks`: the base of every recorder here (feature recorders, firing-rate and
  synaptic-input monitors, the addition counter, the module-path lister): a subclass chooses the
  modules and the hook of each; hooks are attached on ``__enter__`` and removed on ``__exit__``.
* :func:`evaluating`: eval mode, no gradient, resting neurons before and after, the previous
  mode restored: how every forward outside training runs a (spiking) network.
"""
import contextlib
from collections.abc import Callable, Iterator

import torch
from spikingjelly.activation_based import functional
from torch import nn


class ForwardHooks:
    """Hooks on chosen submodules for the duration of a ``with`` block.

    Subclasses implement :meth:`hook_for`, returning ``(kind, hook)`` for a module to watch
    (``kind``: ``'forward'`` or ``'pre'``) or None to leave it alone, and call ``super().__init__``
    with the network. Records kept by the hooks survive the block.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._handles = []

    def hook_for(self, name: str, module: nn.Module) -> tuple[str, Callable] | None:
        raise NotImplementedError

    def __enter__(self):
        for name, module in self.model.named_modules():
            chosen = self.hook_for(name, module)
            if chosen is not None:
                kind, hook = chosen
                register = module.register_forward_pre_hook if kind == 'pre' else module.register_forward_hook
                self._handles.append(register(hook))
        return self

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        self._handles = []


@contextlib.contextmanager
def evaluating(net: nn.Module) -> Iterator[nn.Module]:
    """Run ``net`` in eval mode without gradients from resting neurons; restore its mode after."""
    was_training = net.training
    net.eval()
    functional.reset_net(net)
    try:
        with torch.no_grad():
            yield net
    finally:
        functional.reset_net(net)
        net.train(was_training)
