"""A training iteration reads the device back to the host once, and runs one collective of its own: the
loss guard's one decision.

On a GPU every read of a device tensor from Python (``item``, ``float()``, ``bool()``, ``tolist``,
``cpu()``, ``numpy()``) waits for the GPU to finish its queue. This CPU test counts those reads while the
training session and the model run an iteration as BasicSR's loop does (``feed_data``, then
``optimize_parameters``), on an iteration whose losses are not logged.
"""
import copy
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from basicsr_snn.data.unreadable_samples import UNREADABLE_KEY
from basicsr_snn.training_session import TrainingSession
from snn_options import build_model, in_process_options, training_batch, training_options, write_teacher_checkpoint

READS = {'item', 'tolist', 'cpu', 'numpy', '__float__', '__int__', '__bool__', '__index__'}
PRINT_FREQ = 4


class HostReads(torch.overrides.TorchFunctionMode):
    """Counts the reads of tensor values by the host (:data:`READS`), but those of ``ignored`` tensors."""

    def __init__(self, ignored=()):
        super().__init__()
        self.ignored = {id(tensor) for tensor in ignored}
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in READS and args and torch.is_tensor(args[0]) and id(args[0]) not in self.ignored:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


def optimizer_step_counters(model):
    """Adam's step counters, which torch keeps on the CPU (unless ``capturable``/``fused``) even for a CUDA
    network, so reading them is no device sync."""
    return [state['step'] for optimizer in model.optimizers for state in optimizer.state.values() if 'step' in state]


def iteration_reads(tmp_path, data_root, model_type='SNNModel', iterations=3, **train):
    """Host reads of each of ``iterations`` iterations after a first one (that creates the optimizer state)."""
    teacher_path = write_teacher_checkpoint(tmp_path / 'teacher.pth') if model_type == 'DistillSNNModel' else None
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'syncs', model_type,
                                                            teacher_path=teacher_path, total_iter=10, **train))
    options['logger']['print_freq'] = PRINT_FREQ
    session = TrainingSession(build_model(options), options, iterations_per_epoch=2)
    batch = training_batch(options)
    reads = []
    try:
        for current_iter in range(1, iterations + 2):
            data = dict(copy.copy(batch), **{UNREADABLE_KEY: ['[]', '[]']})
            with HostReads(optimizer_step_counters(session.model)) as counter:
                session.feed_data(data)
                session.optimize_parameters(current_iter)
            if current_iter > 1:
                reads.append(counter.reads)
    finally:
        session.close()
    return session, reads


@pytest.mark.parametrize('train', [
    {},
    {'amp': {'dtype': 'fp16'}, 'grad_clip_norm': 1.0},
    {'amp': {'dtype': 'bf16'}, 'rate_opt': {'target': 0.1, 'loss_weight': 0.01}, 'ema_decay': 0.9},
], ids=['fp32', 'fp16-clip', 'bf16-rate-ema'])
def test_an_iteration_of_snn_model_reads_the_device_once(tmp_path, data_root, train):
    session, reads = iteration_reads(tmp_path, data_root, **train)
    assert reads == [['tolist']] * 3, reads
    assert session.model.loss_guard.skipped_in_a_row == 0


def test_an_iteration_of_distillation_reads_the_device_once(tmp_path, data_root):
    _, reads = iteration_reads(tmp_path, data_root, 'DistillSNNModel', iterations=2)
    assert reads == [['tolist']] * 2, reads


def test_the_logged_iteration_reads_its_losses_when_they_are_asked_for(tmp_path, data_root):
    session, _ = iteration_reads(tmp_path, data_root, iterations=PRINT_FREQ - 1)  # the last one is logged
    with HostReads() as counter:
        logged = session.model.get_current_log()
    assert set(logged) == {'l_pix', 'l_fft', 'firing_rate'} and all(isinstance(v, float) for v in logged.values())
    assert counter.reads  # the reads happen here, not during the steps
    with HostReads() as counter:
        assert session.model.get_current_log() == logged
    assert not counter.reads


class Multiplications(torch.overrides.TorchFunctionMode):
    """Records the in-place multiplications (of gradients, by clipping)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.mul_, torch._foreach_mul_):
            self.calls.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('clip', [None, 1e-3])
def test_the_gradients_are_scaled_only_to_clip_them(tmp_path, data_root, clip):
    """``clip_grad_norm_`` with an infinite norm would still multiply every gradient (by 1)."""
    options = in_process_options(tmp_path, training_options(tmp_path, data_root, 'clip', grad_clip_norm=clip))
    model = build_model(options)
    model.feed_data(training_batch(options))
    model.forward_student()
    model.compute_losses(1)[0].backward()
    grads = [p.grad for p in model.get_bare_model(model.net_g).parameters() if p.grad is not None]
    norm_before = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    with Multiplications() as multiplications:
        norm = model.optim_wrapper.gradient_norm()
    torch.testing.assert_close(norm, norm_before)
    assert bool(multiplications.calls) == (clip is not None)


COLLECTIVES = ('all_reduce', 'all_gather', 'all_gather_object', 'broadcast', 'reduce', 'barrier')


def _distributed_iteration_worker(rank, port, root, data_root, results):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    options = in_process_options(root / f'rank{rank}', training_options(root, data_root, 'ddp_syncs', total_iter=10))
    options.update(dist=True, rank=rank, world_size=2)
    options['logger']['print_freq'] = PRINT_FREQ
    session = TrainingSession(build_model(options), options, iterations_per_epoch=2)
    batch = training_batch(options, start=rank)
    calls = []
    originals = {name: getattr(dist, name) for name in COLLECTIVES}

    def counted(name):
        def collective(*args, **kwargs):
            calls[-1].append(name)
            return originals[name](*args, **kwargs)
        return collective

    try:
        for name in COLLECTIVES:
            setattr(dist, name, counted(name))
        for current_iter in (1, 2, 3):
            calls.append([])
            with HostReads(optimizer_step_counters(session.model)) as counter:
                session.feed_data(dict(copy.copy(batch), **{UNREADABLE_KEY: ['[]', '[]']}))
                session.optimize_parameters(current_iter)
            calls[-1].append(counter.reads)
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)
        session.close()
    results[rank] = calls
    dist.destroy_process_group()


def test_under_ddp_an_iteration_costs_one_collective_of_this_package_and_one_read(tmp_path, data_root):
    """The loss guard, the stop signal and the unreadable files share one all-reduce (DDP's own gradient
    all-reduce runs in C++ and is not counted)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    results = mp.Manager().dict()
    mp.start_processes(_distributed_iteration_worker, args=(port, tmp_path, data_root, results), nprocs=2,
                       start_method='forkserver')
    for rank in (0, 1):
        assert results[rank][1:] == [['all_reduce', ['tolist']]] * 2, results[rank]
