"""--config-dir: the *.conf KubeletConfiguration drop-ins merged over the --config file as
upstream does (lexical order, subdirectories in place, each one a JSON merge patch over the
defaulted configuration so far). Reads the drop-in files only.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubelet.config.decode import from_dict, read_file, to_dict
from kubelet.config.errors import ConfigError
from kubelet.config.schema import Note

log = logging.getLogger(__name__)
SUFFIX = ".conf"


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch: mappings merge key by key, null deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def files(directory: Path) -> Iterator[Path]:
    """Every file under `directory` in filepath.WalkDir's order: names sorted, directories
    entered where they sort (symlinks to directories are not followed)."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        raise ConfigError(str(directory), "kubelet drop-in config directory not found") from None
    except OSError as e:
        raise ConfigError(str(directory), f"cannot read kubelet drop-in directory: {e}") from None
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from files(Path(entry.path))
        else:
            yield Path(entry.path)


def merge_dir(base: dict[str, Any], directory: Path, note: Note) -> dict[str, Any]:
    """The YAML form of `base` (decoded and defaulted) with every *.conf file under
    `directory` merged over it in order; other files are skipped with a warning."""
    merged: object = to_dict(from_dict(base, note=note))
    for path in files(directory):
        if not path.name.endswith(SUFFIX):
            log.debug("skipped %s in the kubelet drop-in directory: not a %s file", path, SUFFIX)
            continue
        merged = merge_patch(merged, read_file(path, "kubelet drop-in config file"))
    assert isinstance(merged, dict)
    return merged
