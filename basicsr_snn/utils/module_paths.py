"""List a network's module paths with the shapes they output, to choose feature-hint points."""
import torch
from torch import nn

from basicsr_snn.utils.hooks import ForwardHooks, evaluating


def _shape_of(output):
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_shape_of(item) for item in output)
    return type(output).__name__


def list_module_paths(model: nn.Module, input_shape_or_tensor: tuple | torch.Tensor,
                      max_depth: int | None = None) -> list[tuple[str, str, tuple]]:
    """Run one forward pass and report what every submodule outputs.

    Args:
        model (nn.Module): any network; its training mode is restored afterwards.
        input_shape_or_tensor (tuple | torch.Tensor): the input, or its full shape including
            the batch dimension, e.g. ``(1, 3, 64, 64)`` (then filled with uniform noise on the
            model's device and dtype).
        max_depth (int | None): keep only paths with at most this many dotted components
            (``1``: direct children). None keeps all.

    Returns:
        list[tuple[str, str, tuple]]: ``(path, type name, output shape)`` in the order the
        modules first ran; the path is what ``model.get_submodule`` and hint configs take. A
        module called several times is listed once, with its first output's shape; a tuple
        output gives a tuple of shapes. Modules that did not run are left out.
    """
    if isinstance(input_shape_or_tensor, torch.Tensor):
        inputs = input_shape_or_tensor
    else:
        reference = next(model.parameters(), torch.empty(0))
        inputs = torch.rand(*input_shape_or_tensor, device=reference.device, dtype=reference.dtype)
    with _OutputShapes(model, max_depth) as shapes, evaluating(model):
        model(inputs)
    return list(shapes.records.values())


class _OutputShapes(ForwardHooks):
    """The type and first output shape of every module down to ``max_depth``, in the order they ran."""

    def __init__(self, model, max_depth):
        super().__init__(model)
        self.max_depth = max_depth
        self.records = {}

    def hook_for(self, path, module):
        if not path or (self.max_depth is not None and path.count('.') >= self.max_depth):
            return None

        def record(module, _inputs, output):
            self.records.setdefault(path, (path, type(module).__name__, _shape_of(output)))

        return 'forward', record


def format_module_table(rows: list[tuple[str, str, tuple]]) -> str:
    """The rows of :func:`list_module_paths` as an aligned text table."""
    header = ('path', 'type', 'output shape')
    lines = [header] + [(path, type_name, str(shape)) for path, type_name, shape in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(2)]
    return '\n'.join(f'{path:<{widths[0]}}  {type_name:<{widths[1]}}  {shape}' for path, type_name, shape in lines)
