"""The log lines the models write and ``benchmarks.training_logs`` reads back, defined once.

Each message is a ``str.format`` template; :func:`pattern` turns it into the regular expression
that parses it, so changing a message here changes its writer and its reader together.
"""
import re
import string

TEACHER_PSNR = 'Teacher PSNR on {dataset}: {psnr:.2f} dB'
FIRING_RATES = 'Firing rates on {dataset}: {rates}'
FIRING_RATE_ENTRY = '{level} {rate:.4f}'
FIRING_RATE_SEPARATOR = ', '


def pattern(template: str) -> re.Pattern:
    """A regex matching ``template``'s output, one named group per field (``(?P<psnr>...)``)."""
    parts = []
    for literal, field, _spec, _conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f'(?P<{field}>.+?)')
    return re.compile(''.join(parts) + '$')


def firing_rates_message(dataset: str, rates: dict[str, float]) -> str:
    """The FIRING_RATES line for ``{level: rate}``."""
    entries = FIRING_RATE_SEPARATOR.join(FIRING_RATE_ENTRY.format(level=level, rate=rate)
                                         for level, rate in rates.items())
    return FIRING_RATES.format(dataset=dataset, rates=entries)
