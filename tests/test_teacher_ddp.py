"""The all-in-one teachers train under DDP (2 gloo processes, ``find_unused_parameters: false``), as
``torchrun --nproc_per_node=N`` runs ``options/train_teacher_allinone*.yml``."""
import socket
import types

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from basicsr_snn import _compat
from basicsr_snn.archs.adair_arch import AdaIR
from basicsr_snn.archs.promptir_arch import PromptIR

# the release's layers included (the defaults), at a CPU size
TEACHERS = {
    'PromptIR': lambda: PromptIR(inp_channels=1, out_channels=1, dim=8, num_blocks=(1, 1, 1, 1),
                                 num_refinement_blocks=1, prompt_dims=(8, 16, 32), prompt_sizes=(8, 4, 2)),
    'AdaIR': lambda: AdaIR(inp_channels=1, out_channels=1, dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1),
}
ITERATIONS = 3


def _train_worker(rank, name, port, results):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    torch.manual_seed(0)
    model = types.SimpleNamespace(opt={'dist': True, 'num_gpu': 0}, device=torch.device('cpu'))
    net = _compat.model_to_device(model, TEACHERS[name]())
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    generator = torch.Generator().manual_seed(rank)
    losses = []
    for _ in range(ITERATIONS):
        image = torch.rand(2, 1, 20, 20, generator=generator)
        optimizer.zero_grad()
        loss = torch.nn.functional.l1_loss(net(image + 0.1), image)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    results[rank] = (losses, [p.detach().clone() for p in net.module.parameters()])
    dist.destroy_process_group()


@pytest.mark.parametrize('name', sorted(TEACHERS))
def test_two_process_ddp_trains_the_teacher_with_its_release_layers(name):
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    results = mp.Manager().dict()
    mp.start_processes(_train_worker, args=(name, port, results), nprocs=2, start_method='forkserver')
    (losses0, weights0), (losses1, weights1) = results[0], results[1]
    assert len(losses0) == len(losses1) == ITERATIONS and losses0 != losses1  # each rank its own batches
    assert all(torch.equal(a, b) for a, b in zip(weights0, weights1))  # the gradients were averaged


@pytest.mark.parametrize('name', sorted(TEACHERS))
def test_only_the_layers_without_a_gradient_are_frozen_and_they_still_load(name):
    net = TEACHERS[name]()
    image = torch.rand(1, 1, 20, 20)
    torch.nn.functional.l1_loss(net(image), image).backward()
    frozen = {key for key, p in net.named_parameters() if not p.requires_grad}
    without_gradient = {key for key, p in net.named_parameters() if p.grad is None}
    assert frozen and frozen == without_gradient
    release = TEACHERS[name]().state_dict()
    assert set(frozen) <= set(release)
    net.load_state_dict(release, strict=True)
