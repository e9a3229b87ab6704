"""README.md and docs/*.md: every relative link resolves (its #anchor to a heading of the target), and
every ``scripts/...`` or ``options/...`` path they name exists."""
import re
from pathlib import Path

import pytest

from pipeline_utils import REPO_ROOT

DOCUMENTS = [REPO_ROOT / 'README.md', *sorted((REPO_ROOT / 'docs').glob('*.md'))]
FENCE = re.compile(r'^```.*?^```', re.S | re.M)
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
# a path of this repository: starts at a word boundary that is not inside another path or a placeholder
NAMED_PATH = re.compile(r'(?<![\w./<>$-])((?:scripts|options)/[\w./*-]*[\w*])')


def prose(text: str) -> str:
    """The text without fenced code blocks (their '#' lines are comments, not headings)."""
    return FENCE.sub('', text)


def heading_anchors(document: Path) -> set[str]:
    """GitHub's anchors of the document's headings: lower case, punctuation dropped, spaces to hyphens,
    '-1', '-2', ... after a repeated one."""
    anchors = set()
    for heading in re.findall(r'^#+ (.+)$', prose(document.read_text()), re.M):
        slug = re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
        anchor, repeat = slug, 0
        while anchor in anchors:
            repeat += 1
            anchor = f'{slug}-{repeat}'
        anchors.add(anchor)
    return anchors


def broken_links(document: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(document.read_text())):
        if re.match(r'[a-z]+:', target):  # https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(f'{target}: no {resolved}')
        elif anchor and (resolved.suffix != '.md' or anchor not in heading_anchors(resolved)):
            broken.append(f'{target}: no heading #{anchor} in {resolved.name}')
    return broken


def missing_paths(document: Path) -> list[str]:
    named = {path.rstrip('.') for path in NAMED_PATH.findall(document.read_text())}
    return sorted(path for path in named if not any(REPO_ROOT.glob(path)))


@pytest.mark.parametrize('document', DOCUMENTS, ids=lambda document: document.name)
def test_every_relative_link_resolves(document):
    assert broken_links(document) == []


@pytest.mark.parametrize('document', DOCUMENTS, ids=lambda document: document.name)
def test_every_named_script_and_option_file_exists(document):
    assert missing_paths(document) == []


def test_the_checks_find_what_is_broken(tmp_path):
    (tmp_path / 'a.md').write_text('# A title\n\n## Set-up (`x`)\n\n```bash\n# not a heading\n```\n')
    page = tmp_path / 'b.md'
    page.write_text('[ok](a.md#set-up-x) [ok](a.md) [ok](#b) [bad](a.md#not-a-heading) [bad](c.md) '
                    '[web](https://example.org/x.md)\n\n# B\n\n`scripts/run_demo.py`, options/none.yml, '
                    '<BasicSR>/scripts/metrics/calculate_psnr_ssim.py, `options/demo/*.yml`\n')
    assert broken_links(page) == ['a.md#not-a-heading: no heading #not-a-heading in a.md',
                                  f'c.md: no {tmp_path / "c.md"}']
    assert missing_paths(page) == ['options/none.yml']
    assert heading_anchors(tmp_path / 'a.md') == {'a-title', 'set-up-x'}
