"""Print the constraints file of this environment: the exact version of every installed distribution
that basicsr-snn and its test extra need, directly or through their own requirements.

Run it after the test suite has passed in an environment installed without constraints (the newest
releases inside setup.py's bounds), and commit what it prints as the new tested set:

    python scripts/freeze_constraints.py > constraints.txt

Distributions that are installed but needed by nothing of basicsr-snn's (tools, other projects) are
left out, unlike ``pip freeze``; requirements that the environment's platform or Python skip
(their markers are false) are left out too.
"""
import argparse
import sys
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HEADER = """\
# The versions the test suite passed with (Python 3.11, Linux), for `pip install -c constraints.txt ...`.
# Made by `python scripts/freeze_constraints.py > constraints.txt`; docs/compatibility.md says how to
# move to newer releases.
"""


def needed_distributions(root: str = 'basicsr-snn', extras: tuple[str, ...] = ('test', )) -> dict[str, str]:
    """``{name: version}`` of the installed distributions that ``root[extras]`` needs, transitively."""
    versions, extras_seen = {}, {}
    pending = [(root, set(extras))]
    while pending:
        name, wanted_extras = pending.pop()
        key = canonicalize_name(name)
        if key in extras_seen and wanted_extras <= extras_seen[key]:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError as error:
            raise SystemExit(f'freeze_constraints.py: {name} is required but not installed; install '
                             f"basicsr-snn with `pip install --no-build-isolation -e '.[test]'` first") from error
        extras_seen[key] = extras_seen.get(key, set()) | wanted_extras
        versions[dist.metadata['Name']] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            environments = [{'extra': extra} for extra in extras_seen[key]] or [{'extra': ''}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((requirement.name, set(requirement.extras)))
    versions.pop(distribution(root).metadata['Name'])
    return versions


def main(argv=None):
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    versions = needed_distributions()
    sys.stdout.write(HEADER + ''.join(f'{name}=={versions[name]}\n' for name in sorted(versions, key=str.lower)))


if __name__ == '__main__':
    main()
