"""List a network's module paths with the shapes they output, to choose feature-hint points."""
import torch


def _shape_of(output):
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)):
        return tuple(_shape_of(item) for item in output)
    return type(output).__name__


def list_module_paths(model, input_shape_or_tensor, max_depth=None):
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
    records = {}

    def record(path):

        def hook(module, args, output):
            records.setdefault(path, (path, type(module).__name__, _shape_of(output)))

        return hook

    handles = [
        module.register_forward_hook(record(path)) for path, module in model.named_modules()
        if path and (max_depth is None or path.count('.') < max_depth)
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return list(records.values())


def format_module_table(rows):
    """The rows of :func:`list_module_paths` as an aligned text table."""
    header = ('path', 'type', 'output shape')
    lines = [header] + [(path, type_name, str(shape)) for path, type_name, shape in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(2)]
    return '\n'.join(f'{path:<{widths[0]}}  {type_name:<{widths[1]}}  {shape}' for path, type_name, shape in lines)
