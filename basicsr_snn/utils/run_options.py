"""BasicSR option dicts for runs driven in-process (benchmarks), not by ``train.py``."""
import copy
from pathlib import Path


def in_process_options(base: dict, name: str, run_dir: str | Path, total_iter: int, seed: int, device: str = 'cpu',
                       lr: float | None = None, lr_floor: float | None = None, print_freq: int = 100,
                       ema_decay: float = 0., save_every: int = 100, val_every: int | None = None) -> dict:
    """A training option dict for ``build_model``: ``base``'s model, losses and optimizer, our budget.

    What changes against an option file: no datasets (the caller feeds batches), the paths under
    ``run_dir`` (``--auto_resume`` on: a rerun resumes from its newest checkpoint), ``total_iter``, no warm-up, no EMA (a 0.999 average of a short run still holds
    the initial weights; ``ema_decay`` sets it), the seed, and a cosine schedule that spans the budget and ends at
    ``lr_floor`` x the learning rate (so the rate is still high where the curve should flatten).

    Args:
        base (dict): Options of a BasicSR option file (``network_g``, ``train``, ...).
        name (str): The run's name.
        run_dir (str | Path): Its folder (``path.experiments_root``).
        total_iter (int): Training iterations.
        seed (int): ``manual_seed``.
        device (str): ``'cpu'`` or ``'cuda'``.
        lr (float | None): ``train.optim_g.lr``; None: the file's.
        lr_floor (float | None): ``eta_min`` as a fraction of the learning rate; None: the file's
            ``eta_min``.
        print_freq (int): Iterations between the loss entries of ``model.log_dict``.
        ema_decay (float): ``train.ema_decay``; 0 turns EMA off.
        save_every (int): ``logger.save_checkpoint_freq``.
        val_every (int | None): ``val.val_freq``; None: the training loop never validates.
    """
    opt = copy.deepcopy(base)
    opt.pop('datasets', None)
    run_dir = Path(run_dir)
    opt.update(name=name, is_train=True, dist=False, rank=0, world_size=1, num_gpu=int(device == 'cuda'),
               manual_seed=seed, auto_resume=True,
               logger={'print_freq': print_freq, 'save_checkpoint_freq': save_every, 'use_tb_logger': False})
    if opt.get('val') is not None:
        opt['val']['val_freq'] = val_every
    opt['path'] = dict(opt.get('path') or {}, experiments_root=str(run_dir), models=str(run_dir / 'models'),
                       training_states=str(run_dir / 'training_states'), visualization=str(run_dir / 'visualization'),
                       pretrain_network_g=None, resume_state=None)
    train = opt['train']
    train.update(total_iter=total_iter, warmup_iter=-1, ema_decay=ema_decay)
    if lr is not None:
        train['optim_g']['lr'] = lr
    scheduler = train['scheduler']
    if scheduler['type'] == 'CosineAnnealingRestartLR':
        scheduler.update(periods=[total_iter], restart_weights=[1])
        if lr_floor is not None:
            scheduler['eta_min'] = lr_floor * train['optim_g']['lr']
    return opt
