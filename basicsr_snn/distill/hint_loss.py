"""What compares a student feature with a teacher feature: any loss in BasicSR's LOSS_REGISTRY."""
from basicsr.losses import build_loss
from basicsr.utils.registry import LOSS_REGISTRY

DEFAULT_HINT_LOSS = {'type': 'MSELoss', 'loss_weight': 1.0}


def build_comparison_loss(loss_opt, option_key, default=DEFAULT_HINT_LOSS):
    """Build a registered BasicSR loss (``MSELoss``, ``L1Loss``, ``CharbonnierLoss``, ``FFTLoss`` ...).

    Args:
        loss_opt (dict | None): ``{type: ..., <the loss's keyword arguments>}``; None: ``default``.
        option_key (str): Where the options come from, e.g. ``train.distill.hints[0].loss``.
        default (dict): Options used when ``loss_opt`` is None.

    Returns:
        nn.Module: called as ``loss(pred, target)``.
    """
    loss_opt = dict(default if loss_opt is None else loss_opt)
    loss_type = loss_opt.get('type')
    if loss_type not in LOSS_REGISTRY:
        raise ValueError(f'{option_key}.type must name a registered loss, got {loss_type!r}; '
                         f'registered: {sorted(LOSS_REGISTRY.keys())}')
    try:
        return build_loss(loss_opt)
    except TypeError as error:
        raise ValueError(f'{option_key}: cannot build {loss_type}: {error}') from error
