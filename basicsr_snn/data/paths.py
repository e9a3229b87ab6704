"""Where the real benchmark sets live (never inside the project)."""
import os
from pathlib import Path

DATASETS_ENV_VAR = 'BASICSR_SNN_DATASETS'
_REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_datasets_root() -> Path:
    """Folder that holds Set12, BSD68, CBSD68, Train400, CBSD432, Rain12, ...

    Returns:
        Path: ``$BASICSR_SNN_DATASETS`` when set, else ``<repo>/../shared/datasets``. The folder may
        not exist; callers check (tests skip) before reading from it.
    """
    override = os.environ.get(DATASETS_ENV_VAR)
    if override:
        return Path(override).expanduser()
    return _REPO_ROOT.parent / 'shared' / 'datasets'
