"""One vocabulary of option checks, each called as ``check_x(key, value, ...)``.

``key`` names the option in the message (``T``, ``network_g.T``, ``train.distill.hints[0].weight``);
every check returns the value it accepted, so it can be used inline. Components check their own
arguments under their own names, and :func:`named_errors` lets the caller that read them from an
option file put the file's option path in front.
"""
import contextlib
from collections.abc import Iterable, Iterator
from numbers import Integral, Real


def check_choice(key: str, value, choices: Iterable):
    """``value`` must be one of ``choices``."""
    if value not in choices:
        raise ValueError(f'{key} must be one of {tuple(choices)}, got {value!r}')
    return value


def check_bool(key: str, value) -> bool:
    """``true`` or ``false`` (not 0 / 1, which compare equal to them)."""
    if not isinstance(value, bool):
        raise ValueError(f'{key} must be one of (True, False), got {value!r}')
    return value


def check_int(key: str, value, minimum: int | None = None) -> int:
    """An integer (not a bool), at least ``minimum`` when given."""
    if isinstance(value, bool) or not isinstance(value, Integral) or (minimum is not None and value < minimum):
        bound = f' >= {minimum}' if minimum is not None else ''
        raise ValueError(f'{key} must be an integer{bound}, got {value!r}')
    return value


def check_number(key: str, value, minimum: float | None = None, above: float | None = None,
                 allow_none: bool = False, maximum: float | None = None) -> float | None:
    """A real number (not a bool), ``>= minimum``, ``> above`` and ``<= maximum`` when given; None too with
    ``allow_none``."""
    if value is None and allow_none:
        return value
    bad = isinstance(value, bool) or not isinstance(value, Real)
    bad = bad or (minimum is not None and value < minimum) or (above is not None and value <= above)
    bad = bad or (maximum is not None and value > maximum)
    if bad:
        bounds = ([f'>= {minimum}'] * (minimum is not None) + [f'> {above}'] * (above is not None)
                  + [f'<= {maximum}'] * (maximum is not None))
        wording = f'a number {" and ".join(bounds)}'.rstrip() + (' or ~' if allow_none else '')
        raise ValueError(f'{key} must be {wording}, got {value!r}')
    return value


def check_keys(key: str, options, valid: Iterable[str]) -> dict:
    """``options`` must be a mapping whose keys are all in ``valid``."""
    if not isinstance(options, dict):
        raise ValueError(f'{key} must be a mapping with keys {list(valid)}, got {options!r}')
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f'{key}: unknown key(s) {unknown}; valid keys: {list(valid)}')
    return options


@contextlib.contextmanager
def named_errors(option_key: str, arguments: Iterable[str] = (), label: str | None = None) -> Iterator[None]:
    """Re-raise ``ValueError`` / ``TypeError`` / ``KeyError`` raised inside with ``option_key`` in front.

    A message that starts with one of ``arguments`` (``T must be ...``) becomes
    ``<option_key>.T must be ...``; any other becomes ``<label>: <message>`` (``label`` defaults to
    ``option_key``).
    """
    try:
        yield
    except (ValueError, TypeError, KeyError) as error:
        message = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
        argument = message.split(' ', 1)[0].split('[', 1)[0].split('=', 1)[0].rstrip(':')
        prefix = f'{option_key}.' if argument in arguments else f'{label or option_key}: '
        raise type(error)(prefix + message) from error
