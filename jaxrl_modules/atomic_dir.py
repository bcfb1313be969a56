"""Atomic checkpoint directories: never replace what is not ours, swap a new version in at
once, clean up after killed saves, and let readers see one complete version.

Saving to `path` (`atomic_dir`):
1. `check_target` refuses, touching nothing, a path that is the current working directory or
   one of its parents ("" and "." included), a symbolic link, a path under a regular file, a
   regular file, a non-empty directory that is not one of our checkpoints, a checkpoint of
   another kind, or a checkpoint holding entries we did not write. An empty directory, or one
   of our checkpoints of the same kind, may be replaced.
2. Leftovers of killed saves, `.<name>.tmp-<host>-<pid>-<hex>` beside `path`, are removed when
   their writer is no longer alive: each writer holds an exclusive flock of its temporary
   directory, which the kernel releases when it dies, so a live concurrent writer's are kept even
   across hosts or pid namespaces (where flock does not work: by host and pid).
3. The new checkpoint is written completely into such a temporary sibling directory.
4. Under an exclusive `flock` of the parent directory it is swapped in with Linux's
   `renameat2(RENAME_EXCHANGE)` (or `RENAME_NOREPLACE` when nothing is at `path` yet): at
   every instant `path` holds a complete checkpoint, the old one or the new one. The old
   version, now at the temporary name, is deleted afterwards (by the next save if we are killed).
   Where `renameat2` is unavailable (not Linux, an old glibc or kernel, a filesystem without
   exchange) the fallback renames the old version away and the new one in: a reader holding
   the shared lock still never sees the gap, but a kill between the two renames leaves no
   checkpoint at `path` (the old one stays at `.<name>.old-<host>-<pid>-<hex>`, which the next
   save moves back before it begins).

Readers (`read_consistently`) hold a shared `flock` of the parent directory while they read,
so a swap waits for them; each save also writes a unique `save_id`, and a read during which
it changed (possible where flock does not work, e.g. some network filesystems) is retried, as is
a read that found nothing at `path` while a live writer's temporary sibling exists (the
fallback swap's gap, which the shared lock cannot close where flock does not work).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

try:
    import fcntl
except ImportError:  # not POSIX: no reader/writer locks, readers rely on the save_id retry
    fcntl = None  # type: ignore[assignment]

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<what>tmp|old)-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[0-9a-f]{32}$")

# identify(path) -> None, or (kind, entries a checkpoint of that kind may hold)
Identify = Callable[[Path], Optional[tuple]]


def new_save_id() -> str:
    return uuid.uuid4().hex


# ----------------------------------------------------------------------------- target checks
def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" or word.startswith("rl_") else "a ") + word


def _describe(path: Path) -> str:
    if path.is_symlink():
        return f"a symbolic link to {os.readlink(path)!r}"
    if path.is_file():
        return f"a regular file of {path.stat().st_size} bytes"
    if path.is_dir():
        return "a directory"
    return "a special file"


def path_text(path: Any) -> str:
    """A checkpoint path as text: a str or os.PathLike (bytes decoded), a leading `~` expanded
    (never a folder literally named `~`); a TypeError for anything else."""
    try:
        raw = os.fspath(path)
    except TypeError:
        raise TypeError(f"Checkpoint path must be a str or os.PathLike, got {type(path).__name__} {path!r}") from None
    if isinstance(raw, bytes):
        raw = os.fsdecode(raw)
    return os.path.expanduser(raw)


def check_target(path: Any, kind: str, identify: Identify) -> Path:
    """The absolute path to save a `kind` checkpoint at; a ValueError (nothing touched) where
    saving there could destroy anything that is not a checkpoint of ours of that kind."""
    raw = path_text(path)
    cwd = Path.cwd().resolve()
    if raw.strip() in ("", "."):
        raise ValueError(f"Refusing to save a checkpoint to {raw!r}: that is the current working directory {str(cwd)!r}, "
                         "which would be replaced; expected a new or checkpoint sub-directory such as 'checkpoints/run1'")
    target = Path(os.path.abspath(raw))
    resolved = target.resolve()
    if resolved == cwd or resolved in cwd.parents:
        what = "the current working directory" if resolved == cwd else f"a parent of the current working directory {str(cwd)!r}"
        raise ValueError(f"Refusing to save a checkpoint to {raw!r}: it is {what}, which would be replaced; "
                         "expected a new or checkpoint sub-directory such as 'checkpoints/run1'")
    for ancestor in reversed(target.parents):
        if os.path.lexists(ancestor) and not ancestor.is_dir():
            raise ValueError(f"Cannot save a checkpoint to {raw!r}: its parent {str(ancestor)!r} is {_describe(ancestor)}, "
                             "expected a directory")
    if target.is_symlink():
        raise ValueError(f"Refusing to save a checkpoint to {raw!r}: it is {_describe(target)}; expected a directory "
                         "(save to the link's target path instead)")
    if not os.path.lexists(target):
        return target
    if not target.is_dir():
        raise ValueError(f"Refusing to save a checkpoint to {raw!r}: {_describe(target)} is there; expected a new path, "
                         f"an empty directory or {_a(kind)} checkpoint. Nothing was changed")
    entries = sorted(os.listdir(target))
    if not entries:
        return target
    found = identify(target)
    if found is None:
        shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
        raise ValueError(f"Refusing to save a checkpoint to {raw!r}: it is a non-empty directory that is not a jaxrl_modules "
                         f"checkpoint (no valid metadata.json or algorithm.json); it holds {shown}. Expected a new path, "
                         "an empty directory or one of our checkpoints. Nothing was changed")
    found_kind, allowed = found
    if found_kind != kind:
        raise ValueError(f"Refusing to save {_a(kind)} checkpoint to {raw!r}: it holds {_a(found_kind)} checkpoint, which would "
                         "be replaced; delete it first or choose another path. Nothing was changed")
    foreign = [e for e in entries if e not in allowed]
    if foreign:
        raise ValueError(f"Refusing to save a checkpoint to {raw!r}: it is {_a(kind)} checkpoint but also holds {foreign[:5]}, "
                         f"which are not part of one (expected only {sorted(allowed)}). Nothing was changed")
    return target


# ----------------------------------------------------------------------------- leftovers
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an unreaped zombie no longer writes anything
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _writer_alive(entry: Path, match: Any) -> bool:
    """Whether the save that made this temporary sibling may still be running. A writer holds an
    exclusive flock of its temporary directory until it ends (the kernel drops it when the process
    dies), so a lock we can take means a dead writer, whatever its host or pid namespace; where
    flock does not work, a writer on another host counts as alive and one on this host by its pid."""
    if match["what"] == "tmp" and fcntl is not None:
        try:
            fd = os.open(entry, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            return False  # already gone
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        except OSError:
            pass  # no flock on this filesystem: judge by host and pid below
        finally:
            os.close(fd)
    return match["host"] != _HOST or _pid_alive(int(match["pid"]))


def _leftovers(target: Path) -> list:
    out = []
    for entry in os.listdir(target.parent):
        match = _LEFTOVER.match(entry)
        if match and match["name"] == target.name and not _writer_alive(target.parent / entry, match):
            out.append((match["what"], target.parent / entry))
    return out


def clean_leftovers(target: Path) -> None:
    """Removes temporary directories of killed saves to `target` (never a live writer's); an old
    version left by a killed fallback swap is moved back first when nothing is at `target`."""
    leftovers = _leftovers(target)
    olds = sorted((p for what, p in leftovers if what == "old"), key=lambda p: p.stat().st_mtime)
    if olds and not os.path.lexists(target):
        os.rename(olds.pop(), target)
    for what, p in leftovers:
        if p.exists() and (what == "tmp" or p in olds):
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------- swap
_renameat2: Any = None


def _exchange_or_place(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags); False where the system cannot do it (so the caller falls back)."""
    global _renameat2
    if _renameat2 is None:
        try:
            _renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", False)
        except (OSError, TypeError):  # no C library to load by that name (e.g. Windows)
            _renameat2 = False
    if not _renameat2:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _swap_in(tmp: Path, target: Path) -> None:
    for _ in range(5):
        exists = os.path.lexists(target)
        try:
            if _exchange_or_place(tmp, target, _RENAME_EXCHANGE if exists else _RENAME_NOREPLACE):
                return
        except OSError as err:  # another (non-locking) writer came or went in between: look again
            if err.errno in (errno.ENOENT, errno.EEXIST):
                continue
            raise
        break
    # fallback without renameat2: two renames (see the module docstring)
    if os.path.lexists(target):
        old = tmp.parent / _LEFTOVER_NAME(target, "old")
        os.rename(target, old)
        os.rename(tmp, target)
        os.rename(old, tmp)  # deleted by the caller like an exchanged old version
    else:
        os.rename(tmp, target)


def _LEFTOVER_NAME(target: Path, what: str) -> str:  # noqa: N802
    return f".{target.name}.{what}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex}"


@contextmanager
def _dir_lock(directory: Path, exclusive: bool) -> Iterator[None]:
    """flock of a directory; a no-op where the directory or flock is unavailable."""
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


def atomic_dir(path: Any, write: Callable[[Path], None], kind: str, identify: Identify) -> str:
    """Writes a `kind` checkpoint with `write(tmp_dir)` and swaps it in at `path` atomically."""
    target = check_target(path, kind, identify)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _dir_lock(target.parent, exclusive=True):
        clean_leftovers(target)
    tmp = target.parent / _LEFTOVER_NAME(target, "tmp")
    tmp.mkdir()
    try:
        with _dir_lock(tmp, exclusive=True):  # held until we end: marks this save as alive
            write(tmp)
            with _dir_lock(target.parent, exclusive=True):
                check_target(path, kind, identify)  # nothing foreign appeared while we wrote
                _swap_in(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the old version after a swap, or a failed write
    return str(target)


# ----------------------------------------------------------------------------- readers
def _save_under_way(target: Path) -> bool:
    """Whether a live writer's temporary sibling of `target` exists (another host's counts as live)."""
    try:
        entries = os.listdir(target.parent)
    except OSError:
        return False
    for entry in entries:
        match = _LEFTOVER.match(entry)
        if match and match["name"] == target.name and _writer_alive(target.parent / entry, match):
            return True
    return False


def read_consistently(path: Any, read: Callable[[], Any], save_id: Callable[[Path], Optional[str]],
                      attempts: int = 20) -> Any:
    """`read()` under a shared lock of the parent directory; retried (a few times) when the
    checkpoint's `save_id` changed during it, i.e. a save replaced it under the reader."""
    target = Path(os.path.abspath(os.fspath(path)))
    for attempt in range(attempts):
        with _dir_lock(target.parent, exclusive=False):
            before = save_id(target)
            try:
                result = read()
            except (ValueError, OSError):
                gap = before is None and _save_under_way(target)  # between the fallback's two renames
                if attempt + 1 == attempts or (save_id(target) == before and not gap):
                    raise
                time.sleep(0.005 * (attempt + 1))
                continue
            if save_id(target) == before:
                return result
        time.sleep(0.005 * (attempt + 1))
    raise ValueError(f"Checkpoint {str(target)!r} kept changing while it was read ({attempts} attempts); "
                     "expected it to stay the same for one read")
