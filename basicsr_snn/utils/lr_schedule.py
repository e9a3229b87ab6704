"""The learning-rate schedule of a completed iteration: what a checkpoint holds and a resume restores.

BasicSR's loop calls ``model.update_learning_rate(k)`` *before* the step of iteration ``k``, and it
steps the schedulers at every iteration but the first. So between two iterations the schedulers
already belong to the next one, and a checkpoint written there (a stop signal, a crash) would
resume one step ahead, one more step at each stop, until a schedule whose ``periods`` end at
``total_iter`` fails at the last iteration. The training session therefore keeps the schedule as
it was when the last step completed (:class:`ScheduleState`, a few numbers) and saves that one,
whatever the order in which a loop calls the update.

After iteration ``k`` of BasicSR's loop every scheduler has taken :func:`steps_after` ``(k) = k - 1``
steps (a scheduler starts at ``last_epoch`` 0). A resumed state that says otherwise (written at a
stop by basicsr-snn before this fix), or whose learning rate is not the options' (the loss guard
advises lowering ``train.optim_g.lr``), is replaced by the options' schedule replayed to ``k``:
:func:`align_resumed_schedule`.
"""
import copy
import warnings
from dataclasses import dataclass

#: the keys of an optimizer's param group that a scheduler sets
LR_KEYS = ('lr', 'initial_lr')


def steps_after(iteration: int) -> int:
    """Scheduler steps BasicSR's ``update_learning_rate`` has taken once ``iteration`` is complete."""
    return max(iteration - 1, 0)


@dataclass
class ScheduleState:
    """The schedulers' states and the optimizers' learning rates of a model (BasicSR's ``schedulers`` and
    ``optimizers`` lists), copied."""
    schedulers: list
    learning_rates: list  # per optimizer, per param group: {'lr': ..., 'initial_lr': ...}

    @classmethod
    def of(cls, model) -> 'ScheduleState':
        return cls([copy.deepcopy(s.state_dict()) for s in model.schedulers],
                   [[{key: group[key] for key in LR_KEYS if key in group} for group in o.param_groups]
                    for o in model.optimizers])

    def apply_to(self, model) -> None:
        for scheduler, state in zip(model.schedulers, self.schedulers):
            scheduler.load_state_dict(copy.deepcopy(state))
        for optimizer, groups in zip(model.optimizers, self.learning_rates):
            for group, rates in zip(optimizer.param_groups, groups):
                group.update(rates)


def align_resumed_schedule(model, options_schedule: ScheduleState, resume_state: dict,
                           optimizer_keys: list[str]) -> list[str]:
    """Make the schedule of a model that has just loaded ``resume_state`` the one of its iteration.

    Args:
        model: The model after ``resume_training(resume_state)``.
        options_schedule (ScheduleState): The model's schedule before loading: the options' at iteration 0.
        resume_state (dict): The loaded training state (``iter``, ``schedulers``, ``optimizers``).
        optimizer_keys (list[str]): The option key of each optimizer's learning rate, for the messages.

    Returns:
        list[str]: One line per correction made (none: the state is kept as it is, so an unchanged run
        resumes exactly).
    """
    iteration = resume_state['iter']
    corrections = []
    ahead = {state.get('last_epoch', steps_after(iteration)) - steps_after(iteration)
             for state in resume_state['schedulers']} - {0}
    if ahead:
        corrections.append(f'the learning-rate schedule of the checkpoint of iteration {iteration} is '
                           f'{max(ahead)} step(s) off (saved at a stop signal by an earlier basicsr-snn); corrected '
                           f'to iteration {iteration}')
    saved = [[group.get('initial_lr', group['lr']) for group in state['param_groups']]
             for state in resume_state['optimizers']]
    wanted = [[group.get('initial_lr', group['lr']) for group in groups] for groups in options_schedule.learning_rates]
    for key, saved_rates, option_rates in zip(optimizer_keys, saved, wanted):
        if saved_rates != option_rates:
            corrections.append(f'{key} is {_rates(option_rates)} in the options and {_rates(saved_rates)} in the '
                               f'checkpoint of iteration {iteration}: the resumed run uses the options\' '
                               f'{_rates(option_rates)}, on its schedule at iteration {iteration}')
    if corrections:
        options_schedule.apply_to(model)
        with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": a replay, not training
            warnings.simplefilter('ignore', UserWarning)
            for _ in range(steps_after(iteration)):
                for scheduler in model.schedulers:
                    scheduler.step()
    return corrections


def _rates(rates):
    distinct = list(dict.fromkeys(rates))
    return f'{distinct[0]:g}' if len(distinct) == 1 else '[' + ', '.join(f'{rate:g}' for rate in rates) + ']'
