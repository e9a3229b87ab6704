"""What the train and test entry points share: their help, the thread policy, friendly errors, and no
empty run folder left behind by a run that failed to start."""
import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from basicsr_snn.data.unreadable_samples import TooManyBadSamples
from basicsr_snn.models.training_guard import TrainingDiverged
from basicsr_snn.training_session import STOPPED_EXIT_CODE, TrainingStopped
from basicsr_snn.utils.checkpoint import CheckpointWriteError, NoLoadableCheckpoint
from basicsr_snn.utils.experiment_lock import ExperimentLocked
from basicsr_snn.utils.threads import apply_thread_policy

USAGE = {
    'train': ('basicsr-snn-train', 'train a network (ANN teacher, spiking student, distillation)', 'experiments/'),
    'test': ('basicsr-snn-test', 'test trained networks on the datasets of an option file', 'results/'),
}
#: errors a user causes or fixes (a path, an option, a full disk) and those the project raises on purpose (a locked
#: experiment, a diverged run, too many unreadable files, no loadable checkpoint): one line each; others (bugs) keep
#: their traceback
USER_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError, KeyError, CheckpointWriteError,
               ExperimentLocked, TrainingDiverged, TooManyBadSamples, NoLoadableCheckpoint)


def help_text(kind: str) -> str:
    command, what, output = USAGE[kind]
    options = Path(__file__).resolve().parents[1] / 'options'
    return f"""{command}: {what}, with BasicSR's pipeline and the basicsr-snn plugin.

usage: {command} -opt OPTIONS.yml [--launcher none|pytorch] [--auto_resume] [--debug]
                 [--force_yml KEY=VALUE ...] [--local_rank N]

  -opt FILE          the option file (YAML). One per task ships in options/ ({options}):
                     distill_denoise.yml, train_snn_denoise.yml, train_teacher_denoise.yml,
                     test_denoise.yml, the deraining / dehazing / deblurring files, and
                     options/demo/*.yml for a CPU-sized run on the demo set
  --launcher         none (default) or pytorch (torchrun; inferred when run under torchrun)
  --auto_resume      continue the experiment from its newest complete checkpoint
  --force_yml        override options, e.g. --force_yml train:total_iter=1000 network_g:T=2
  --debug            BasicSR's debug mode; also shows the full traceback of an error

Writes {output}<name>/ in the current directory. Threads: $BASICSR_SNN_THREADS (see docs/speed.md).
{STOPPED if kind == 'train' else ''}"""


STOPPED = f"""
Exit codes: 0 done, 1 error, 2 bad command line, {STOPPED_EXIT_CODE} stopped by SIGTERM, SIGINT or SIGUSR1: the
current iteration finished and its checkpoint was saved; rerun with --auto_resume to continue.
"""


def run_pipeline(kind: str, argv: list[str] | None = None, **pipeline_kwargs) -> int:
    """Run :func:`basicsr_snn.pipeline.train` or :func:`~basicsr_snn.pipeline.test` (``kind``, given
    ``pipeline_kwargs``) on ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    command = USAGE[kind][0]
    if not argv or '-h' in argv or '--help' in argv:
        print(help_text(kind))
        return 0 if argv else 2
    debug = '--debug' in argv
    problem = _option_file_problem(argv)
    if problem:
        print(f'{command}: {problem}', file=sys.stderr)
        return 2
    try:
        threads = apply_thread_policy()
        if is_main_process():
            print(threads, flush=True)
        from basicsr_snn import pipeline
        getattr(pipeline, kind)(argv, os.getcwd(), **pipeline_kwargs)
    except TrainingStopped:
        return STOPPED_EXIT_CODE
    except Exception as error:
        if debug or not isinstance(error, USER_ERRORS):
            raise
        print(f'{command}: {describe_error(error)}', file=sys.stderr)
        for note in getattr(error, '__notes__', ()):  # the run folders removed (basicsr_snn.pipeline)
            print(note, file=sys.stderr)
        print(f'{command}: add --debug for the full traceback', file=sys.stderr)
        return 1
    return 0


def describe_error(error: BaseException) -> str:
    """One line for a user error; an unknown registry name lists the registered ones."""
    if isinstance(error, KeyError):
        message = str(error.args[0]) if error.args else ''
        registry = re.search(r"No object named '(.+)' found in '(\w+)' registry", message)
        if registry:
            names = sorted(_registry(registry[2]).keys())
            return f'no {registry[2]} named {registry[1]!r} (check its type: option); registered: {names}'
        return f'missing option or key {message!r}'
    if isinstance(error, FileNotFoundError) and error.filename:
        return f'no such file or folder: {error.filename}'
    return str(error)


def _registry(kind):
    from basicsr.utils import registry
    return {'arch': registry.ARCH_REGISTRY, 'model': registry.MODEL_REGISTRY, 'dataset': registry.DATASET_REGISTRY,
            'loss': registry.LOSS_REGISTRY, 'metric': registry.METRIC_REGISTRY}[kind]


@contextlib.contextmanager
def user_errors_as_one_line(command: str, debug: bool = False, results_folder: str | Path | None = None
                            ) -> Iterator[None]:
    """For scripts: a user error (:data:`USER_ERRORS`) inside ends the program with one line (and the
    hint to rerun with ``--debug``) instead of a traceback; ``debug`` keeps the traceback. A failed write
    into ``results_folder`` (cached results that a rerun skips) ends with what is intact and the fix."""
    try:
        yield
    except USER_ERRORS as error:
        if debug:
            raise
        if results_folder is not None and isinstance(error, CheckpointWriteError):
            error = error.with_context(f'the finished results in {results_folder} are intact; free space or move '
                                       f'{results_folder} to a larger disk, then rerun the same command (finished '
                                       'results are skipped)')
        raise SystemExit(f'{command}: {describe_error(error)}\n{command}: add --debug for the full traceback') from None


def _option_file_problem(argv):
    """What is wrong with ``-opt`` in ``argv``, or None."""
    if '-opt' not in argv:
        return 'give the option file with -opt FILE (the option files are in options/; --help shows more)'
    index = argv.index('-opt') + 1
    if index >= len(argv):
        return '-opt needs a file name'
    path = Path(argv[index])
    if not path.is_file():
        return f'-opt {path}: no such option file (the option files are in options/, e.g. options/distill_denoise.yml)'
    return None


def is_main_process():
    """Rank 0 of a torchrun job, or a process without one."""
    return os.environ.get('RANK', '0') == '0'
