"""The one way this project reads network weights from a BasicSR checkpoint.

A BasicSR checkpoint is ``{'params': state_dict}`` (``net_g_<iter>.pth``), with ``'params_ema'``
beside it when EMA was on. The policy, for every network (teacher, student, scripts):

* ``param_key`` names the state dict to read. A key the user did not choose falls back to the
  other BasicSR key (``'params'`` <-> ``'params_ema'``) when the checkpoint lacks it, so a
  checkpoint trained without EMA still initialises an EMA copy; a key the user chose must exist.
  ``None``, or a file whose values are all tensors when the key was not chosen: the file is the
  state dict itself.
* A ``module.`` prefix (a DDP-wrapped network saved as is) is dropped.
* ``strip_prefix`` (e.g. ``net.``: the authors' PyTorch Lightning ``.ckpt`` files of PromptIR and
  AdaIR, ``{'state_dict': {'net.<name>': ...}, 'epoch': ...}``) is removed from every key; every key
  must start with it. When none is given and the keys do not match the network but all share a
  first component whose removal makes them match, the error names that prefix and the option to set.
* A weight that ``torch.nn.utils.parametrize`` reparametrizes (fake-quantized weights,
  :mod:`~basicsr_snn.archs.quantization`) is stored as ``<module>.parametrizations.<name>.original``; a
  checkpoint key ``<module>.<name>`` is matched to it and back, so float and quantized networks load each
  other's weights (the quantizers' buffers a float checkpoint lacks need ``strict: false``).
* Files are read with ``weights_only=True``: one holding other objects is refused, with the
  command that keeps its weights.
* Files are written by :func:`atomic_save`: a checkpoint file is complete or absent, also after a
  power loss (the data and the folder entry are on the disk before it returns).
* ``strict``: names and shapes must match exactly. Otherwise every tensor whose name and shape
  match is loaded, the others are reported, and a checkpoint of which nothing matches is an
  error (it is almost certainly the wrong file).
"""
import os
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

DEFAULT_PARAM_KEY = 'params'
_PARAMETRIZED = re.compile(r'^(?P<module>(?:.*\.)?)parametrizations\.(?P<name>[^.]+)\.original$')
OTHER_PARAM_KEY = {'params': 'params_ema', 'params_ema': 'params'}


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did: the key it read and the names it left out, by reason."""
    param_key: object
    loaded: tuple
    missing: tuple  # in the network, not in the checkpoint
    unexpected: tuple  # in the checkpoint, not in the network
    mismatched: tuple  # in both, with other shapes

    @property
    def not_loaded(self) -> tuple:
        return self.missing + self.mismatched

    def summary(self) -> str:
        parts = [f'{len(self.loaded)} tensors loaded']
        for label, names in (('missing from the checkpoint', self.missing), ('shape differs', self.mismatched),
                             ('not in the network', self.unexpected)):
            if names:
                parts.append(f'{label}: {list(names)}')
        return '; '.join(parts)


def read_state_dict(path: str | Path, param_key: str | None = DEFAULT_PARAM_KEY, key_chosen: bool = False,
                    option_key: str = 'checkpoint', key_option: str | None = None, strip_prefix: str | None = None,
                    prefix_option: str = 'strip_prefix') -> tuple[dict, str | None]:
    """The state dict stored in checkpoint ``path`` under ``param_key`` (see the module policy).

    Args:
        path (str | Path): The checkpoint file.
        param_key (str | None): Key of the state dict; None: the file is the state dict.
        key_chosen (bool): The user chose ``param_key`` (no fallback to the other key).
        option_key (str): The option that gave ``path``, named in errors.
        key_option (str | None): The option that gave ``param_key``; default: ``option_key``.
        strip_prefix (str | None): Removed from every key, which must all start with it.
        prefix_option (str): The option that gave ``strip_prefix``, named in errors.

    Returns:
        tuple[dict, str | None]: The state dict (without ``strip_prefix`` nor ``module.`` prefixes)
        and the key read.
    """
    if strip_prefix is not None and (not isinstance(strip_prefix, str) or not strip_prefix):
        raise ValueError(f'{prefix_option} must be a non-empty string such as net., or ~; got {strip_prefix!r}')
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{option_key}: no such file {str(path)!r}')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        # e.g. a Lightning checkpoint whose hyper-parameters are objects: never unpickled here
        found = re.search(r'GLOBAL (\S+)', str(error))
        raise ValueError(f'{option_key}: {path} holds objects other than tensors and plain containers '
                         f'({found[1] if found else "unknown"}), which are not loaded; if you trust the file, keep its '
                         f'weights only: python -c "import torch; c = torch.load(\'{path}\', weights_only=False); '
                         f'torch.save({{\'state_dict\': c[\'state_dict\']}}, \'weights.ckpt\')"') from error
    if param_key is not None and param_key not in checkpoint and not key_chosen and _is_state_dict(checkpoint):
        param_key = None
    if param_key is not None and param_key not in checkpoint:
        fallback = OTHER_PARAM_KEY.get(param_key)
        if key_chosen or fallback not in checkpoint:
            lightning = f'; a PyTorch Lightning checkpoint: set {key_option or option_key}: state_dict' * (
                'state_dict' in checkpoint)
            raise ValueError(f'{key_option or option_key}: {param_key!r} is not in {path}; it holds '
                             f'{sorted(checkpoint)} (a param key of ~ loads a bare state dict{lightning})')
        param_key = fallback
    state_dict = checkpoint if param_key is None else checkpoint[param_key]
    if strip_prefix is not None:
        if not all(key.startswith(strip_prefix) for key in state_dict):
            raise ValueError(f'{prefix_option}: not every key of {path} [{param_key}] starts with {strip_prefix!r}; '
                             + _prefix_advice(state_dict, prefix_option))
        state_dict = {key[len(strip_prefix):]: value for key, value in state_dict.items()}
    state_dict = {key[len('module.'):] if key.startswith('module.') else key: value
                  for key, value in state_dict.items()}
    return state_dict, param_key


def match_parametrized_keys(expected, state_dict: dict) -> dict:
    """``state_dict`` with ``<module>.<name>`` renamed to ``<module>.parametrizations.<name>.original`` where the
    network (its keys ``expected``) reparametrizes that tensor, and back where it does not."""
    expected = set(expected)
    to_original = {f"{match['module']}{match['name']}": key for key in expected if (match := _PARAMETRIZED.match(key))}

    def renamed(key):
        if key in expected:
            return key
        if key in to_original:
            return to_original[key]
        match = _PARAMETRIZED.match(key)
        plain = f"{match['module']}{match['name']}" if match else None
        return plain if plain in expected else key

    return {renamed(key): value for key, value in state_dict.items()}


def shared_key_prefix(keys) -> str | None:
    """The first dotted component shared by all ``keys`` with its dot (``'net.'``), or None."""
    keys = list(keys)
    heads = {key.split('.', 1)[0] for key in keys}
    if len(heads) != 1 or not all('.' in key for key in keys):
        return None
    return heads.pop() + '.'


def _prefix_advice(state_dict, prefix_option):
    prefix = shared_key_prefix(state_dict)
    if prefix is None:
        return f'they share no prefix (first keys: {list(state_dict)[:3]}); set {prefix_option}: ~'
    return f'keys start with {prefix!r}; set {prefix_option}: {prefix}'


def _is_state_dict(checkpoint):
    return bool(checkpoint) and all(torch.is_tensor(value) for value in checkpoint.values())


def load_weights(network: nn.Module, path: str | Path, param_key: str | None = DEFAULT_PARAM_KEY, strict: bool = True,
                 key_chosen: bool = False, option_key: str = 'checkpoint', network_label: str | None = None,
                 strict_key: str = 'strict', key_option: str | None = None, strip_prefix: str | None = None,
                 prefix_option: str = 'strip_prefix') -> LoadReport:
    """Load checkpoint ``path`` into ``network`` under the module policy; returns a :class:`LoadReport`.

    Raises ``ValueError`` when ``strict`` and anything differs, or when no tensor matches. The
    message names ``option_key`` (the path's option), ``network_label`` (e.g. ``network_t
    (Restormer)``; default: the class name) and ``strict_key`` (the option that asked for strict
    loading, e.g. ``path.strict_load_t``), ``key_option`` (the option that gave ``param_key``) and
    ``prefix_option`` (the option that gave ``strip_prefix``, e.g. ``path.strip_prefix_t``).
    """
    state_dict, param_key = read_state_dict(path, param_key, key_chosen, option_key, key_option, strip_prefix,
                                            prefix_option)
    expected = network.state_dict()
    state_dict = match_parametrized_keys(expected, state_dict)
    mismatched = tuple(sorted(key for key in set(expected) & set(state_dict)
                              if expected[key].shape != state_dict[key].shape))
    report = LoadReport(param_key=param_key,
                        loaded=tuple(sorted(key for key in set(expected) & set(state_dict) if key not in mismatched)),
                        missing=tuple(sorted(set(expected) - set(state_dict))),
                        unexpected=tuple(sorted(set(state_dict) - set(expected))), mismatched=mismatched)
    network_name = network_label or type(network).__name__
    differs = bool(report.missing or report.unexpected or report.mismatched)
    prefix = shared_key_prefix(state_dict) if strip_prefix is None else None
    if ((strict and differs) or not report.loaded) and prefix is not None and \
            {key[len(prefix):] for key in state_dict} & set(expected):
        raise ValueError(f'{option_key}: the keys of {path} [{param_key}] do not match {network_name}: '
                         + _prefix_advice(state_dict, prefix_option))
    if strict and differs:
        raise ValueError(f'{option_key}: {path} [{param_key}] does not match {network_name} under {strict_key}: true; '
                         f'missing keys: {list(report.missing[:10])}, unexpected keys: {list(report.unexpected[:10])}, '
                         f'shape mismatches: {list(report.mismatched[:10])} (first 10 each)')
    if not report.loaded:
        raise ValueError(f'{option_key}: no tensor of {path} [{param_key}] matches {network_name} in name and shape; '
                         f'is it a checkpoint of another network? ({report.summary()})')
    network.load_state_dict({key: state_dict[key] for key in report.loaded}, strict=strict)
    return report


class CheckpointWriteError(OSError):
    """A file could not be written (a full disk, a quota, a lost mount); ``str()`` is one line naming the
    file, its folder and the folder's free space. The file itself is unchanged and no temporary file is left.

    Attributes:
        path (Path): The file.
        reason (str): The underlying error, one line.
        free_bytes (int | None): Free space in the folder at the failure (None when unknown).
    """

    def __init__(self, path: Path, reason: str, free_bytes: int | None, context: str = ''):
        self.path, self.reason, self.free_bytes, self.context = Path(path), reason, free_bytes, context
        free = 'unknown free space' if free_bytes is None else f'{format_bytes(free_bytes)} free'
        super().__init__(f'cannot write {self.path} ({reason}): its folder {self.path.parent} has {free}; '
                         f'{context or "the file is unchanged"}')

    def with_context(self, context: str) -> 'CheckpointWriteError':
        """The same failure, with ``context`` (what is intact, the fix) instead of the generic ending."""
        return CheckpointWriteError(self.path, self.reason, self.free_bytes, context)


def format_bytes(count: float) -> str:
    for unit in ('B', 'KB', 'MB', 'GB'):
        if count < 1024 or unit == 'GB':
            return f'{count:.0f} {unit}' if unit == 'B' else f'{count:.1f} {unit}'
        count /= 1024


def atomic_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary name in the same folder, then rename: ``path`` is never half-written.

    Raises:
        CheckpointWriteError: the write failed (``torch.save`` reports a full disk as a ``RuntimeError``
            of its stream, the rename as an ``OSError``).
    """
    _write_atomically(path, lambda temporary: torch.save(obj, temporary))


def atomic_write_text(text: str, path: str | Path) -> None:
    """:func:`atomic_save` for a text file (a cached result that a rerun trusts once it exists)."""
    _write_atomically(path, lambda temporary: temporary.write_text(text))


_TEMPORARY_FILE = re.compile(r'^\..+\.\d+\.tmp$')


def temporary_path(path: str | Path) -> Path:
    """Where :func:`atomic_save` writes ``path`` before renaming it: a hidden name with the writer's pid."""
    path = Path(path)
    return path.with_name(f'.{path.name}.{os.getpid()}.tmp')


def remove_temporary_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files of :func:`atomic_save` under ``folder`` (a writer killed mid-write leaves
    its own); return them. Only for a folder whose writers are all gone: the caller holds its lock."""
    removed = [path for path in Path(folder).rglob('.*.tmp') if _TEMPORARY_FILE.match(path.name) and path.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _write_atomically(path, write):
    """``write(temporary)``, then rename the temporary file to ``path``. The file is flushed to the disk before
    the rename and the folder after it: otherwise, after a power loss or a node crash, the renamed file can be
    empty or short on the file systems of clusters (XFS, NFS, Lustre), though its name is in place."""
    path = Path(path)
    temporary = temporary_path(path)
    try:
        write(temporary)
        _fsync(temporary)
        os.replace(temporary, path)
        _fsync(path.parent)
    except (OSError, RuntimeError) as error:
        raise CheckpointWriteError(path, f'{type(error).__name__}: {error}'.splitlines()[0],
                                   _free_bytes(path.parent)) from error
    finally:
        temporary.unlink(missing_ok=True)


def _fsync(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _free_bytes(folder):
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def state_dict_for_saving(network: nn.Module) -> dict:
    """``network``'s state dict on the CPU without a DDP ``module.`` prefix; refuses non-finite tensors."""
    state_dict = {(key[len('module.'):] if key.startswith('module.') else key): value.detach().cpu()
                  for key, value in network.state_dict().items()}
    broken = [key for key, value in state_dict.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:
        raise ValueError(f'{type(network).__name__} has non-finite values in {broken[:10]}; not saved')
    return state_dict


class NoLoadableCheckpoint(RuntimeError):
    """``--auto_resume`` found checkpoints of which none loads."""


_MODEL_FILE = re.compile(r'^(?P<label>.+)_(?P<iter>\d+)\.pth$')


def newest_complete_checkpoint(training_states: str | Path, models: str | Path) -> tuple[dict | None, list]:
    """The newest iteration whose training state and every network file load.

    A BasicSR checkpoint of iteration N is ``<training_states>/N.state`` plus one
    ``<models>/<label>_N.pth`` for every label the run saves (``net_g``, and ``net_adapters`` for
    distillation; the labels are read from the file names in ``models``). An iteration with a
    missing, empty or truncated file is skipped.

    Returns:
        tuple: ``(state, skipped)``: the loaded training state (None when there is no state file at
        all) and ``[(path, reason), ...]`` for every file of a newer iteration that did not load.

    Raises:
        NoLoadableCheckpoint: there are state files but no iteration loads; the message names every file.
    """
    training_states, models = Path(training_states), Path(models)
    iterations = sorted((int(path.stem) for path in training_states.glob('*.state') if path.stem.isdigit()),
                        reverse=True)
    labels = sorted({match['label'] for match in map(_MODEL_FILE.match, os.listdir(models) if models.is_dir() else [])
                     if match})
    skipped = []
    for iteration in iterations:
        problems = []
        state = _try_load(training_states / f'{iteration}.state', problems, weights_only=False)
        for label in labels:
            _try_load(models / f'{label}_{iteration}.pth', problems, weights_only=True)
        if not problems:
            return state, skipped
        skipped.extend(problems)
    if iterations:
        raise NoLoadableCheckpoint('--auto_resume: no checkpoint in ' + f'{training_states} and {models} loads: ' +
                           '; '.join(f'{path}: {reason}' for path, reason in skipped))
    return None, skipped


def _try_load(path, problems, weights_only):
    if not path.is_file():
        problems.append((path, 'missing'))
        return None
    try:
        return torch.load(path, map_location='cpu', weights_only=weights_only)
    except Exception as error:  # noqa: BLE001  (any unreadable file disqualifies its checkpoint)
        problems.append((path, f'{type(error).__name__}: {error}'.splitlines()[0]))
        return None
