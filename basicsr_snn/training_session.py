"""What keeps a training run from losing work to a stop signal, a crash or an unreadable training file.

The training loop (:mod:`basicsr_snn.pipeline`) sees the model through a :class:`TrainingSession`, which
adds, for any model class:

* **Stop signals** (SIGTERM, SIGINT, SIGUSR1): the handler only records the signal, so nothing is
  interrupted. Every rank learns whether any rank received one before its next step (in one process)
  or in that step's one all-reduce, which then cancels the step (across processes, see
  :meth:`TrainingSession.feed_data`); then rank 0 saves the checkpoint
  of the last completed iteration (the files of a scheduled save), every rank waits for it, the
  lock is released, one line names the signal and the checkpoint, and the process exits with
  :data:`STOPPED_EXIT_CODE`. Further signals are noted on stderr and change nothing, during the
  save too.
* **A crash** (any exception of the loop but a diverged run or a failed write): rank 0 first saves
  the last completed iteration through the same save path, if it is healthy (below), logs one line
  naming it and re-raises. Every rank holds the same weights, optimizer and scheduler at the end of
  an iteration, so rank 0 needs no other rank to save; a rank blocked in a collective by a dead
  peer cannot save (see docs/losing_no_work.md).
* **Unreadable training files** (:mod:`basicsr_snn.data.unreadable_samples`): each batch carries the
  files replaced on its way; the session gathers them over the ranks, warns once per file and stops
  after ``datasets.train.max_bad_samples`` distinct ones.
* **A failed checkpoint write** names the previous checkpoint, intact, and the fix.
* **Every checkpoint is of a completed iteration and healthy**, whatever triggers it (schedule, stop,
  crash): it holds the learning-rate schedule of that iteration (:mod:`basicsr_snn.utils.lr_schedule`),
  and none is written while the loss guard skips steps, from non-finite weights, or from weights whose
  output on the last batch is not finite; the message names the last healthy checkpoint instead. So
  ``--auto_resume`` never continues from weights the guard knows are broken, and a checkpoint saved
  without this check whose output on the first batch is not finite is refused in one line.
* **The random-number state** of every rank (:mod:`basicsr_snn.utils.random_state`) as the last completed
  step left it goes into the ``.state`` (``random_state``, one entry per rank; a crash save, made by rank 0
  alone, holds rank 0's), so that a resumed run with random crops, flips or noise draws what the
  uninterrupted one drew.
"""
import contextlib
import json
import os
import signal
import threading
from pathlib import Path

import torch
import torch.distributed as dist
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info

from basicsr_snn.data.unreadable_samples import DEFAULT_MAX_BAD_SAMPLES, UNREADABLE_KEY, TooManyBadSamples
from basicsr_snn.models.training_guard import TrainingDiverged, max_over_ranks
from basicsr_snn.utils import experiment_lock, random_state
from basicsr_snn.utils.checkpoint import CheckpointWriteError, atomic_save
from basicsr_snn.utils.hooks import evaluating
from basicsr_snn.utils.lr_schedule import ScheduleState, align_resumed_schedule

#: exit code of a training run stopped by SIGTERM, SIGINT or SIGUSR1 after saving its checkpoint (sysexits'
#: EX_TEMPFAIL: try again later)
STOPPED_EXIT_CODE = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
WRITE_FIX = 'free space or move experiments/ to a larger disk, then rerun with --auto_resume'


class BrokenCheckpoint(ValueError):
    """The resumed checkpoint's weights give a non-finite output."""


class TrainingStopped(SystemExit):
    """A stop signal ended training after its checkpoint was saved; exits with :data:`STOPPED_EXIT_CODE`."""

    def __init__(self):
        super().__init__(STOPPED_EXIT_CODE)


class StopSignals:
    """Records the first of :data:`STOP_SIGNALS` that arrives (main thread only); never raises."""

    def __init__(self):
        self.received = None
        self._previous = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._record) for signum in STOP_SIGNALS}

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _record(self, signum, frame):
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            note = f'{name}: training stops after this iteration, once its checkpoint is saved\n'
        else:
            note = f'{name}: already stopping (SIGKILL stops at once; saved checkpoints stay complete)\n'
        os.write(2, note.encode())  # print() is not safe inside a signal handler


@contextlib.contextmanager
def worker_deaths_deferred():
    """DataLoader workers killed by the same stop signal must not raise (torch's SIGCHLD handler) mid-save."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, previous)


class TrainingSession:
    """``model`` as BasicSR's training loop sees it (see the module); every other attribute is ``model``'s.

    Args:
        model (BaseModel): The model ``build_model(opt)`` built.
        opt (dict): The run's options.
        iterations_per_epoch (int): Batches of the train loader per epoch (the epoch of a saved state).
    """

    def __init__(self, model, opt: dict, iterations_per_epoch: int):
        self.model, self.opt, self.iterations_per_epoch = model, opt, max(1, iterations_per_epoch)
        self.completed_iter = 0
        self.completed_schedule = None  # the ScheduleState of completed_iter
        self.completed_random_state = None  # this rank's random_state.capture() of completed_iter
        self.resume_state = None
        self.resumed_weights_checked = True  # a fresh run has no resumed weights
        self.saved_iter = None
        self.unreadable = {}  # file -> reason, in the order met
        self.max_bad_samples = ((opt.get('datasets') or {}).get('train') or {}).get('max_bad_samples', DEFAULT_MAX_BAD_SAMPLES)
        self.signals = StopSignals()
        self.signals.install()
        self._unagreed_unreadable = []  # met in the last batch, agreed on by the step of the model
        self._agreed_in_the_step = hasattr(model, 'step_flag_source') and dist.is_available() and dist.is_initialized()
        if self._agreed_in_the_step:
            model.step_flag_source = lambda: [self.signals.received or 0, len(self._unagreed_unreadable)]
            model.step_cancelled_by = lambda agreed: bool(agreed[0])

    def __getattr__(self, name):
        return getattr(self.model, name)

    # what the loop calls --------------------------------------------------------------------------

    def resume_training(self, resume_state):
        options_schedule = ScheduleState.of(self.model)
        self.model.resume_training(resume_state)
        for correction in align_resumed_schedule(self.model, options_schedule, resume_state,
                                                 self._learning_rate_keys()):
            get_root_logger().warning(f'Resume: {correction}.')
        self.completed_iter = self.saved_iter = resume_state['iter']
        self.completed_schedule = ScheduleState.of(self.model)
        self.resumed_weights_checked = False
        self.resume_state = resume_state

    def resumed_random_state(self) -> dict | None:
        """This rank's random-number state in the resumed checkpoint (None, with a warning, when it holds none:
        saved by an earlier basicsr-snn, or by a crash save of rank 0 alone)."""
        states = self.resume_state.get('random_state') or []
        rank = get_dist_info()[0]
        if rank < len(states):
            return states[rank]
        get_root_logger().warning(f'Resume: the checkpoint of iteration {self.resume_state["iter"]} holds no random '
                                  f'state of rank {rank}; random crops, flips and noise differ from an '
                                  'uninterrupted run.')
        return None

    def feed_data(self, data):
        """Called once per iteration on every rank, before the step: bad files and stop signals are acted on here.

        Across processes, a model with ``step_flag_source`` (:class:`~basicsr_snn.models.snn_model.SNNModel`)
        carries them in its step's one all-reduce: a signal agreed there cancels that step, so the stop saves the
        iteration before it as a single process would (:meth:`optimize_parameters`); the files of a batch are
        recorded at the next iteration. Any other model costs an all-reduce here.
        """
        met = [tuple(entry) for text in data.pop(UNREADABLE_KEY, []) for entry in json.loads(text)]
        new = [(source, reason) for source, reason in met if source not in self.unreadable]
        if self._agreed_in_the_step:
            signum, any_new = 0, (self.model.agreed_step_flags or (0, 0))[1]
            new, self._unagreed_unreadable = self._unagreed_unreadable, new
        else:
            signum, any_new = max_over_ranks([self.signals.received or 0, len(new)], self.model.device)
        if any_new:
            self._record_unreadable(new)
        if signum:
            self.stop(signal.Signals(signum).name, all_ranks=True)
        self.model.feed_data(data)
        if not self.resumed_weights_checked:
            self._check_resumed_weights()

    def optimize_parameters(self, current_iter):
        self.model.optimize_parameters(current_iter)
        if self._agreed_in_the_step and self.model.step_cancelled:
            self.stop(signal.Signals(self.model.agreed_step_flags[0]).name, all_ranks=True)
        self.completed_iter = current_iter
        self.completed_schedule = ScheduleState.of(self.model)
        self.completed_random_state = random_state.capture()

    def save(self, epoch, current_iter, random_states=None):
        """A scheduled save (``current_iter`` -1: the final ``*_latest.pth``), unless the weights are not healthy
        (:meth:`unhealthy`, rank 0 decides: it writes); a failed write names the previous checkpoint, which is
        intact, and the fix. Without ``random_states`` every rank calls this, and their states are gathered."""
        if random_states is None and current_iter != -1:
            random_states = self._random_states(all_ranks=True)
        problem = self.unhealthy() if get_dist_info()[0] == 0 else None
        if problem:
            get_root_logger().warning(f'Iteration {self.completed_iter}: not saved, {problem}; '
                                      f'{self.last_healthy_checkpoint()}.')
            return
        try:
            with self._schedule_of_the_completed_iteration():
                self.model.save(epoch, current_iter)
            if random_states and get_dist_info()[0] == 0:
                self._add_to_training_state(current_iter, random_state=random_states)
        except CheckpointWriteError as error:
            previous = (f'the previous checkpoint, iteration {self.saved_iter} ({self._state_path(self.saved_iter)}), '
                        'is intact' if self.saved_iter else 'no checkpoint was saved before in this run')
            raise error.with_context(f'{previous}; {WRITE_FIX}') from error
        if current_iter != -1:
            self.saved_iter = current_iter

    def unhealthy(self) -> str | None:
        """Why the weights must not become a checkpoint that ``--auto_resume`` would continue from (None: they
        may): the loss guard is skipping steps, a network holds non-finite values, or ``net_g``'s output on the
        last batch is not finite (weights blown up to finite but useless values, e.g. by a huge learning rate)."""
        guard = getattr(self.model, 'loss_guard', None)
        if guard is not None and guard.skipped_in_a_row:
            return f'the loss guard skipped the last {guard.skipped_in_a_row} step(s)'
        broken = self._non_finite_networks()
        if broken:
            return f'{broken} hold non-finite values'
        if not self._output_is_finite():
            return 'the output of net_g on the last batch is not finite'
        return None

    def last_healthy_checkpoint(self) -> str:
        if not self.saved_iter:
            return 'no healthy checkpoint was saved, so --auto_resume starts from the beginning'
        return (f'the last healthy checkpoint is iteration {self.saved_iter} ({self._state_path(self.saved_iter)}), '
                'where --auto_resume continues')

    # the one save path of a stop and a crash ------------------------------------------------------

    def save_completed_iteration(self, all_ranks: bool) -> str | None:
        """Save the last completed iteration unless it is saved already; returns its state file (None: nothing
        trained, or not healthy). ``all_ranks``: every rank calls this."""
        if not self.completed_iter:
            return None
        random_states = self._random_states(all_ranks)  # a collective: before any rank may skip the save
        if self.saved_iter != self.completed_iter:
            with worker_deaths_deferred():
                self.save((self.completed_iter - 1) // self.iterations_per_epoch, self.completed_iter, random_states)
        return self._state_path(self.completed_iter) if self.saved_iter == self.completed_iter else None

    def stop(self, signal_name: str, all_ranks: bool) -> None:
        """Save, release the lock, log one line and raise :class:`TrainingStopped`.

        ``all_ranks``: every rank calls this at the same iteration, and waits until rank 0 has saved.
        """
        path = self.save_completed_iteration(all_ranks)
        if all_ranks and dist.is_available() and dist.is_initialized():
            dist.barrier()
        experiment_lock.release(Path(self.opt['path']['experiments_root']) / experiment_lock.LOCK_NAME)
        if path:
            saved = f'checkpoint of iteration {self.completed_iter}: {path}; continue with --auto_resume'
        elif self.completed_iter:
            saved = f'iteration {self.completed_iter} not saved; {self.last_healthy_checkpoint()}'
        else:
            saved = 'no iteration was completed, nothing to save'
        get_root_logger().warning(f'Stopped by {signal_name}: {saved} (exit code {STOPPED_EXIT_CODE}).')
        raise TrainingStopped()

    def after_crash(self, error: Exception) -> None:
        """Save the last completed iteration after ``error`` (see the module); a pending stop signal stops
        as the signal would (its DataLoader workers died of it)."""
        logger = get_root_logger()
        if self.signals.received:
            logger.error(f'{type(error).__name__} while stopping: {error}'.splitlines()[0])
            self.stop(signal.Signals(self.signals.received).name, all_ranks=False)
        if (isinstance(error, (TrainingDiverged, CheckpointWriteError, BrokenCheckpoint)) or not self.completed_iter
                or get_dist_info()[0] != 0):
            return
        try:  # the health check runs the network, which may fail as the step did (out of memory)
            problem = self.unhealthy()
            path = None if problem else self.save_completed_iteration(all_ranks=False)
        except Exception as save_error:  # noqa: BLE001  (the original error is the one to raise)
            logger.error(f'{type(error).__name__} after iteration {self.completed_iter}; saving it failed too: '
                         f'{save_error}')
            return
        if problem:
            logger.error(f'{type(error).__name__} after iteration {self.completed_iter}: not saved, {problem}; '
                         f'{self.last_healthy_checkpoint()}.')
            return
        logger.error(f'{type(error).__name__} after iteration {self.completed_iter}: saved its checkpoint {path}; '
                     'fix the cause, then continue with --auto_resume.')

    def close(self) -> None:
        self.signals.restore()
        unreadable = list(self.unreadable) + [source for source, _ in self._unagreed_unreadable
                                              if source not in self.unreadable]
        if unreadable:
            get_root_logger().warning(f'{len(unreadable)} training file(s) could not be read and were replaced: '
                                      f'{unreadable}')

    # helpers --------------------------------------------------------------------------------------

    def _record_unreadable(self, new):
        if dist.is_available() and dist.is_initialized():
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, new)
            new = [entry for entries in gathered for entry in entries]
        logger = get_root_logger()
        for source, reason in new:
            if source not in self.unreadable:
                self.unreadable[source] = reason
                logger.warning(f'Training file {source} cannot be read ({reason}); its sample is replaced by the '
                               f'next one. Unreadable files so far: {len(self.unreadable)} '
                               f'(datasets.train.max_bad_samples: {self.max_bad_samples}).')
        if len(self.unreadable) > self.max_bad_samples:
            raise TooManyBadSamples(
                f'{len(self.unreadable)} training files cannot be read, more than datasets.train.max_bad_samples: '
                f'{self.max_bad_samples}: {list(self.unreadable)}; list every bad file with python '
                f'scripts/check_data.py <dataroot>, fix or remove them, then rerun with --auto_resume')

    def _random_states(self, all_ranks):
        """Every rank's random state of the completed iteration (rank 0's alone unless ``all_ranks``)."""
        state = self.completed_random_state or random_state.capture()
        if all_ranks and dist.is_available() and dist.is_initialized():
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, state)
            return gathered
        return [state]

    def _add_to_training_state(self, iteration, **entries):
        """The model wrote ``<iteration>.state``; add ``entries`` to it (any model class: BasicSR's writes its own)."""
        path = self._state_path(iteration)
        state = torch.load(path, map_location='cpu', weights_only=False)
        atomic_save({**state, **entries}, path)

    @contextlib.contextmanager
    def _schedule_of_the_completed_iteration(self):
        """The schedulers and learning rates as the last completed step left them, for a save: between two
        iterations the loop may already have stepped them for the next one (:mod:`basicsr_snn.utils.lr_schedule`)."""
        if self.completed_schedule is None:
            yield
            return
        current = ScheduleState.of(self.model)
        self.completed_schedule.apply_to(self.model)
        try:
            yield
        finally:
            current.apply_to(self.model)

    def _learning_rate_keys(self):
        """The option key of each optimizer's learning rate (``train.optim_g.lr``), in BasicSR's order."""
        keys = [f'train.{key}.lr' for key in self.opt['train'] if key.startswith('optim_')]
        if len(keys) == len(self.model.optimizers):
            return keys
        return [f'the learning rate of optimizer {index}' for index in range(len(self.model.optimizers))]

    def _state_path(self, iteration):
        return str(Path(self.opt['path']['training_states']) / f'{iteration}.state')

    def _check_resumed_weights(self):
        """The resumed checkpoint may be older than the health check of :meth:`unhealthy`: its output on the
        first batch (every rank's) must be finite, or resuming would only skip steps until the run stops."""
        self.resumed_weights_checked = True
        [broken] = max_over_ranks([not self._output_is_finite()], self.model.device)
        if broken:
            raise BrokenCheckpoint(
                f'the checkpoint of iteration {self.saved_iter} ({self._state_path(self.saved_iter)}) is broken: the '
                'output of its net_g on the first batch is not finite (it was saved without a health check); move '
                'its files away to resume from an earlier checkpoint, or start again without --auto_resume')

    def _output_is_finite(self):
        """``net_g``'s output on the last batch (``lq``), in eval mode and float32, holds finite values only; True
        when the model has no such network or batch."""
        net, batch = getattr(self.model, 'net_g', None), getattr(self.model, 'lq', None)
        if not isinstance(net, torch.nn.Module) or not torch.is_tensor(batch):
            return True
        with evaluating(self.model.get_bare_model(net)) as bare:
            return bool(torch.isfinite(bare(batch)).all())

    def _non_finite_networks(self):
        networks = {name: value for name, value in vars(self.model).items()
                    if name.startswith('net_') and isinstance(value, torch.nn.Module)}
        return [name for name, network in networks.items()
                if any(t.is_floating_point() and not torch.isfinite(t).all() for t in network.state_dict().values())]

