"""Past one machine: two torchrun launchers (--nnodes 2, one per 'node', on this machine with gloo) train, stop
on SIGTERM and resume; BasicSR's --launcher slurm starts from SLURM's environment variables."""
import os
import re
import signal
import socket
import subprocess
import sys

from basicsr_snn.training_session import STOPPED_EXIT_CODE
from pipeline_utils import (TRAIN_SCRIPT, assert_ranks_hold_equal_weights, read_train_log, write_options,
                            write_paired_folder, write_rank_recording_script)
from test_preemption import ENV, deterministic_options, started_at, stop_iteration


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def launch_nodes(script, options, *args, cwd, port):
    """One ``torchrun --nnodes 2 --node_rank N`` per node, each starting one worker."""
    return [subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--nnodes', '2', '--node_rank', str(node),
                              '--nproc_per_node', '1', '--rdzv-endpoint', f'127.0.0.1:{port}', str(script),
                              '-opt', str(options), *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
            for node in (0, 1)]


def wait_all(launchers, timeout=300):
    try:
        return [launcher.communicate(timeout=timeout)[0] for launcher in launchers]
    finally:
        for launcher in launchers:
            if launcher.poll() is None:
                os.killpg(launcher.pid, signal.SIGKILL)


def test_two_nodes_train_stop_on_sigterm_to_both_launchers_and_resume(tmp_path):
    data = write_paired_folder(tmp_path / 'data', size=16)
    script = write_rank_recording_script(tmp_path)
    experiment = tmp_path / 'experiments' / 'two_nodes'
    long_run = write_options(tmp_path / 'long.yml', deterministic_options(data, 'two_nodes', total_iter=10 ** 5))
    launchers = launch_nodes(script, long_run, cwd=tmp_path, port=free_port())
    first = launchers[0].stdout
    lines = []
    for line in first:
        lines.append(line)
        if re.search(r'iter:\s+1, lr', line):
            for launcher in launchers:
                launcher.send_signal(signal.SIGTERM)
            break
    lines.extend(first)
    outputs = wait_all(launchers)
    output = ''.join(lines) + outputs[1]
    assert all(launcher.returncode != 0 for launcher in launchers)
    stopped_at, state = stop_iteration(output)
    assert len(re.findall('Stopped by SIGTERM', output)) == 1  # rank 0 saves and says so, once
    assert f'(exit code {STOPPED_EXIT_CODE})' in output
    assert [p.name for p in (experiment / 'training_states').iterdir()] == [state.name]

    longer = write_options(tmp_path / 'r.yml', deterministic_options(data, 'two_nodes', stopped_at + 2))
    resumed = launch_nodes(script, longer, '--auto_resume', cwd=tmp_path, port=free_port())
    outputs = wait_all(resumed)
    assert all(launcher.returncode == 0 for launcher in resumed), outputs[0][-3000:] + outputs[1][-3000:]
    assert started_at(experiment) == stopped_at
    assert 'World size (gpu number): 2' in read_train_log(experiment)
    saves, _ = assert_ranks_hold_equal_weights(tmp_path)
    assert saves == [stopped_at, -1]


def test_the_slurm_launcher_starts_from_slurm_s_variables(tmp_path):
    """Two SLURM tasks as ``srun`` starts them (``scontrol`` is not needed where MASTER_ADDR is given)."""
    data = write_paired_folder(tmp_path / 'data', size=16)
    options = write_options(tmp_path / 'o.yml', deterministic_options(data, 'slurm', total_iter=2))
    port = free_port()
    tasks = [subprocess.Popen([sys.executable, str(TRAIN_SCRIPT), '-opt', str(options), '--launcher', 'slurm'],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True,
                              env=dict(ENV, SLURM_PROCID=str(task), SLURM_NTASKS='2', SLURM_LOCALID=str(task),
                                       SLURM_NODELIST='node[1-2]', MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port)))
             for task in (0, 1)]
    outputs = wait_all(tasks)
    assert all(task.returncode == 0 for task in tasks), outputs[0][-3000:] + outputs[1][-3000:]
    log = read_train_log(tmp_path / 'experiments' / 'slurm')
    assert 'World size (gpu number): 2' in log
    assert (tmp_path / 'experiments' / 'slurm' / 'models' / 'net_g_latest.pth').is_file()
