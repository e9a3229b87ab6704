"""Connectors that bring a student feature to the shape of the teacher feature it imitates."""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr_snn.utils.checks import check_choice

ADAPTER_TYPES = ('conv1x1', 'none')
RESIZE_MODES = ('bilinear', 'bicubic', 'nearest', 'area', 'none')


class FeatureAdapter(nn.Module):
    """Student feature ``(B, c, h, w)`` -> ``(B, C, H, W)``, the teacher feature's shape.

    A learned 1x1 convolution (with bias) maps ``c`` to ``C`` channels when they differ, and an
    interpolation brings ``(h, w)`` to ``(H, W)`` whenever the sizes differ at run time (e.g. a
    student that pads its input to another multiple than the teacher). With equal shapes the
    adapter is the identity and has no parameters.

    Args:
        student_shape (tuple[int]): Shape of the student feature seen at construction.
        teacher_shape (tuple[int]): Shape of the teacher feature seen at construction.
        adapter (str): ``'conv1x1'`` or ``'none'`` (channel counts must then match).
            Default: ``'conv1x1'``.
        resize (str): ``F.interpolate`` mode for differing sizes (``'bilinear'``, ``'bicubic'``,
            ``'nearest'``, ``'area'``) or ``'none'`` (sizes must then match).
            Default: ``'bilinear'``.
    """

    def __init__(self, student_shape: tuple, teacher_shape: tuple, adapter: str = 'conv1x1', resize: str = 'bilinear'):
        super().__init__()
        check_choice('adapter', adapter, ADAPTER_TYPES)
        self.resize = check_choice('resize', resize, RESIZE_MODES)
        student_shape, teacher_shape = tuple(student_shape), tuple(teacher_shape)
        if student_shape == teacher_shape:
            self.proj = nn.Identity()
            return
        if len(teacher_shape) == 5 and len(student_shape) == 4:
            raise ValueError(f'the teacher feature {teacher_shape} is a multi-step sequence '
                             f'(T, B, C, H, W) and the student feature {student_shape} is not; '
                             f'set teacher_reduce: mean')
        if len(student_shape) != 4 or len(teacher_shape) != 4 or student_shape[0] != teacher_shape[0]:
            raise ValueError(f'cannot adapt the student feature of shape {student_shape} to the teacher '
                             f'feature of shape {teacher_shape}: adapters map (B, c, h, w) to (B, C, H, W)')
        student_channels, teacher_channels = student_shape[1], teacher_shape[1]
        if student_channels != teacher_channels and adapter == 'none':
            raise ValueError(f'student feature {student_shape} and teacher feature {teacher_shape} '
                             f'differ in channels; set adapter: conv1x1')
        self._check_size(student_shape[2:], teacher_shape[2:], student_shape, teacher_shape)
        self.proj = (nn.Conv2d(student_channels, teacher_channels, 1)
                     if student_channels != teacher_channels else nn.Identity())

    def _check_size(self, student_size, teacher_size, student_shape, teacher_shape):
        if tuple(student_size) != tuple(teacher_size) and self.resize == 'none':
            raise ValueError(f'student feature {tuple(student_shape)} and teacher feature '
                             f'{tuple(teacher_shape)} differ in size; set resize: bilinear (or another mode)')

    def forward(self, x: torch.Tensor, teacher_shape: tuple) -> torch.Tensor:
        """Map ``x`` onto ``teacher_shape`` (the shape of the teacher feature it is compared with)."""
        x = self.proj(x)
        size = tuple(teacher_shape[2:])
        if tuple(x.shape[2:]) != size:
            self._check_size(x.shape[2:], size, x.shape, teacher_shape)
            align = {'align_corners': False} if self.resize in ('bilinear', 'bicubic') else {}
            x = F.interpolate(x, size=size, mode=self.resize, **align)
        return x


class HintAdapters(nn.ModuleDict):
    """One :class:`FeatureAdapter` per hint name, called together (one module for DDP to wrap)."""

    def forward(self, student_features: dict, teacher_features: dict) -> dict:
        """``{name: student feature}`` -> ``{name: adapted feature}``, shaped like ``teacher_features``."""
        return {name: adapter(student_features[name], teacher_features[name].shape) for name, adapter in self.items()}

    def has_parameters(self) -> bool:
        return any(True for _ in self.parameters())
