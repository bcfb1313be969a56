"""Checkpoint safety: saving never destroys what is not a checkpoint of ours, a reader always
finds a complete checkpoint while writers replace it, kill -9 at any point of a save leaves a
loadable checkpoint, leftovers of killed saves are cleaned (a live writer's never), and
class.pkl is only a fallback."""

import hashlib
import os
import pickle
import random
import select
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import jax
import numpy as np
import pytest

from jaxrl_modules import DefaultModelConfig, RLModule
from jaxrl_modules import atomic_dir as atomic
from jaxrl_modules import checkpoint
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule

from conftest import raises_naming

REPO = Path(__file__).resolve().parents[1]
OBS, ACT = gym.spaces.Box(-1.0, 1.0, (3,), np.float32), gym.spaces.Discrete(2)

# A writer process: saves params whose every value is `offset + k` for k = 0, 1, 2, ...
WRITER = r"""
import os, sys
import gymnasium as gym, jax, numpy as np
from jaxrl_modules import DefaultModelConfig
from jaxrl_modules.algorithms.ppo import DefaultPPORLModule
path, offset, stop = sys.argv[1], float(sys.argv[2]), sys.argv[3]
module = DefaultPPORLModule(observation_space=gym.spaces.Box(-1.0, 1.0, (3,), np.float32),
                            action_space=gym.spaces.Discrete(2), model_config=DefaultModelConfig(fcnet_hiddens=[4]))
params = jax.device_get(module.init(jax.random.key(0)))
k = 0
while not os.path.exists(stop):
    module.save_to_path(path, jax.tree_util.tree_map(lambda x: np.full_like(x, offset + k), params))
    if k == 0:
        print("ready", flush=True)
    k += 1
print(k, flush=True)
"""


@pytest.fixture(scope="module")
def module():
    return DefaultPPORLModule(observation_space=OBS, action_space=ACT, model_config=DefaultModelConfig(fcnet_hiddens=[4]))


@pytest.fixture(scope="module")
def params(module):
    return jax.device_get(module.init(jax.random.key(0)))


def filled(params, value):
    return jax.tree_util.tree_map(lambda x: np.full_like(x, value), params)


def the_value(params):
    """The one value all leaves hold: a mix of two saves would hold two."""
    values = np.unique(np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(params)]))
    assert len(values) == 1, f"params mix several saves: {values}"
    return float(values[0])


def snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def dot_entries(directory: Path) -> list:
    return sorted(p for p in os.listdir(directory) if p.startswith("."))


def start_writer(path: Path, offset: float, stop: Path) -> subprocess.Popen:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(offset), str(stop)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(REPO))


def wait_ready(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready and proc.stdout.readline().strip() == "ready", "writer did not start"


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- nothing destroyed
def test_saving_beside_other_files_leaves_them_byte_identical(tmp_path, module, params):
    folder = tmp_path / "experiments"
    (folder / "notes").mkdir(parents=True)
    (folder / "results.csv").write_bytes(b"step,return\n1,20\n")
    (folder / "notes" / "plan.md").write_text("keep me")
    before = snapshot(folder)
    raises_naming(ValueError, lambda: module.save_to_path(folder, params), str(folder), "non-empty directory",
                  "results.csv", "expected")
    assert snapshot(folder) == before
    module.save_to_path(folder / "ckpt", params)
    module.save_to_path(folder / "ckpt", filled(params, 2.0))  # overwriting our own checkpoint is fine
    after = snapshot(folder)
    assert {k: v for k, v in after.items() if not k.startswith("ckpt")} == before
    assert the_value(module.restore_from_path(folder / "ckpt")) == 2.0
    (folder / "ckpt" / "mine.txt").write_text("added by hand")
    before = snapshot(folder)
    raises_naming(ValueError, lambda: module.save_to_path(folder / "ckpt", params), "mine.txt", "not part of one")
    assert snapshot(folder) == before


@pytest.mark.parametrize("target", ["", ".", "cwd", "parent_of_cwd", "file", "under_file", "symlink"])
def test_refused_targets_touch_nothing(tmp_path, monkeypatch, module, params, target):
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.bin").write_bytes(os.urandom(64))
    (tmp_path / "a_file").write_text("precious")
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "x.txt").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    monkeypatch.chdir(work)
    path = {"cwd": str(work), "parent_of_cwd": str(tmp_path), "file": tmp_path / "a_file",
            "under_file": tmp_path / "a_file" / "ckpt", "symlink": tmp_path / "link"}.get(target, target)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="checkpoint"):
        module.save_to_path(path, params)
    assert snapshot(tmp_path) == before


def test_empty_directory_may_be_replaced(tmp_path, module, params):
    (tmp_path / "empty").mkdir()
    module.save_to_path(tmp_path / "empty", filled(params, 3.0))
    assert the_value(module.restore_from_path(tmp_path / "empty")) == 3.0
    assert checkpoint.identify(tmp_path / "empty")[0] == "rl_module"


def test_other_modules_params_are_refused_before_anything_is_written(tmp_path, module):
    other = DefaultPPORLModule(observation_space=OBS, action_space=ACT, model_config=DefaultModelConfig(fcnet_hiddens=[8]))
    raises_naming(ValueError, lambda: module.save_to_path(tmp_path / "c", other.init(jax.random.key(0))),
                  "params['encoder']", "(8,)", "(4,)")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- atomic for readers
@pytest.mark.slow
def test_reader_never_fails_while_two_writers_save(tmp_path, module, params):
    path, stop = tmp_path / "ckpt", tmp_path / "stop"
    writers = [start_writer(path, 1000.0 * (i + 1), stop) for i in range(2)]
    try:
        for w in writers:
            wait_ready(w)
        seen, loads, deadline = set(), 0, time.monotonic() + 3.0
        while time.monotonic() < deadline:
            for _ in range(300):  # a tight poll without the readers' lock: the path is never without a checkpoint
                assert (path / "metadata.json").is_file() and (path / "params").is_dir() and (path / "class.pkl").is_file()
            if loads % 4 == 3:
                loaded, restored = RLModule.from_checkpoint(path)
                assert isinstance(loaded, DefaultPPORLModule)
            else:
                restored = module.restore_from_path(path)
            seen.add(the_value(restored))
            loads += 1
    finally:
        stop.write_text("")
        counts = [int(w.communicate(timeout=60)[0].split()[-1]) for w in writers]
    assert loads >= 20 and min(counts) >= 5, (loads, counts)
    assert len(seen) >= 3 and {int(v) // 1000 for v in seen} == {1, 2}  # both writers' versions were read
    assert dot_entries(tmp_path) == []


@pytest.mark.slow
def test_kill_9_at_random_points_leaves_a_loadable_checkpoint(tmp_path, module, params):
    rng = random.Random(9)
    paths = [tmp_path / f"c{i}" for i in range(3)]
    writers = [start_writer(p, 1000.0 * (i + 1), tmp_path / "never") for i, p in enumerate(paths)]
    for w in writers:
        wait_ready(w)
    for w in writers:  # each dies at another point of one of its saves
        time.sleep(rng.uniform(0.0, 0.15))
        w.kill()
        w.wait()
    for i, p in enumerate(paths):
        _, restored = RLModule.from_checkpoint(p)
        assert int(the_value(restored)) // 1000 == i + 1
    live = tmp_path / f".c0.tmp-{atomic._HOST}-{os.getpid()}-{'a' * 32}"  # a live concurrent writer's
    live.mkdir()
    with atomic._dir_lock(live, exclusive=True):
        for p in paths:
            module.save_to_path(p, filled(params, 5.0))
            assert the_value(module.restore_from_path(p)) == 5.0
        assert dot_entries(tmp_path) == [live.name]


class Killed(BaseException):
    """Stands for SIGKILL at one step of a save (with cleanup disabled, the disk is left as a kill leaves it)."""


@pytest.mark.parametrize("point", ["mid_write", "before_swap", "after_swap"])
def test_death_at_each_step_of_a_save_leaves_a_loadable_checkpoint(tmp_path, monkeypatch, module, params, point):
    module.save_to_path(tmp_path / "c", filled(params, 1.0))
    with monkeypatch.context() as m:
        m.setattr(atomic, "shutil", SimpleNamespace(rmtree=lambda *args, **kwargs: None))  # a killed process cleans nothing
        if point == "mid_write":
            write_json = checkpoint._write_json

            def die_before_metadata(file, data):
                if file.name == "metadata.json":
                    raise Killed
                write_json(file, data)

            m.setattr(checkpoint, "_write_json", die_before_metadata)
        else:
            swap_in = atomic._swap_in

            def die_around_swap(tmp, target):
                if point == "after_swap":
                    swap_in(tmp, target)
                raise Killed

            m.setattr(atomic, "_swap_in", die_around_swap)
        with pytest.raises(Killed):
            module.save_to_path(tmp_path / "c", filled(params, 2.0))
    assert the_value(module.restore_from_path(tmp_path / "c")) == (2.0 if point == "after_swap" else 1.0)
    [leftover] = dot_entries(tmp_path)
    os.rename(tmp_path / leftover, tmp_path / leftover.replace(f"-{os.getpid()}-", f"-{dead_pid()}-"))  # its writer died
    module.save_to_path(tmp_path / "c", filled(params, 3.0))
    assert the_value(module.restore_from_path(tmp_path / "c")) == 3.0 and dot_entries(tmp_path) == []


def test_interrupted_write_keeps_the_old_checkpoint(tmp_path, monkeypatch, module, params):
    module.save_to_path(tmp_path / "c", filled(params, 1.0))
    original = checkpoint._write_module

    def write_then_die(mod, p, directory):
        original(mod, p, directory)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "_write_module", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        module.save_to_path(tmp_path / "c", filled(params, 2.0))
    assert the_value(module.restore_from_path(tmp_path / "c")) == 1.0 and dot_entries(tmp_path) == []


def test_leftovers_of_dead_writers_are_cleaned_live_ones_kept(tmp_path, module, params):
    """A writer is alive while it holds the flock of its temporary directory, whatever the pid or
    host in its name (containers sharing a volume and a hostname have their own pid namespaces)."""
    module.save_to_path(tmp_path / "c", params)
    dead = tmp_path / f".c.tmp-{atomic._HOST}-{dead_pid()}-{'b' * 32}"
    unlocked_own_pid = tmp_path / f".c.tmp-{atomic._HOST}-{os.getpid()}-{'e' * 32}"
    unlocked_other_host = tmp_path / f".c.tmp-otherhost-{os.getpid()}-{'f' * 32}"
    live = tmp_path / f".c.tmp-otherhost-{dead_pid()}-{'c' * 32}"
    other_name = tmp_path / f".d.tmp-{atomic._HOST}-{dead_pid()}-{'d' * 32}"
    for d in (dead, unlocked_own_pid, unlocked_other_host, live, other_name):
        (d / "params").mkdir(parents=True)
    with atomic._dir_lock(live, exclusive=True):  # a live writer holds its directory's lock
        module.save_to_path(tmp_path / "c", params)
        assert dot_entries(tmp_path) == sorted([live.name, other_name.name])


def test_fallback_without_renameat2(tmp_path, monkeypatch, module, params):
    monkeypatch.setattr(atomic, "_renameat2", False)
    module.save_to_path(tmp_path / "c", filled(params, 1.0))
    module.save_to_path(tmp_path / "c", filled(params, 2.0))
    assert the_value(module.restore_from_path(tmp_path / "c")) == 2.0 and dot_entries(tmp_path) == []
    # killed between the fallback's two renames: the old version is moved back by the next save
    old = tmp_path / f".c.old-{atomic._HOST}-{dead_pid()}-{'e' * 32}"
    os.rename(tmp_path / "c", old)
    atomic.clean_leftovers(tmp_path / "c")
    assert the_value(module.restore_from_path(tmp_path / "c")) == 2.0 and dot_entries(tmp_path) == []


def test_reader_retries_when_the_checkpoint_changes_under_it(tmp_path, module, params):
    module.save_to_path(tmp_path / "c", filled(params, 1.0))
    calls = []

    def read():
        calls.append(1)
        if len(calls) == 1:  # a save lands mid-read (possible where flock is unavailable)
            (tmp_path / "c" / "metadata.json").write_text(
                (tmp_path / "c" / "metadata.json").read_text().replace('"save_id": "', '"save_id": "x'))
            raise ValueError("Corrupt checkpoint")
        return "second read"

    assert atomic.read_consistently(tmp_path / "c", read, checkpoint.save_id) == "second read" and len(calls) == 2
    with pytest.raises(ValueError, match="Corrupt"):  # an error with the same save_id is not retried
        atomic.read_consistently(tmp_path / "c", lambda: (_ for _ in ()).throw(ValueError("Corrupt")), checkpoint.save_id)


def test_reader_waits_out_the_fallback_swap_gap_where_flock_is_unavailable(tmp_path, monkeypatch, module, params):
    # e.g. NFS: flock fails (silently) and renameat2 cannot exchange, so a reader can land between
    # the fallback's two renames, when nothing is at the path but the writer's temporary siblings
    import threading

    monkeypatch.setattr(atomic, "_dir_lock", lambda directory, exclusive: __import__("contextlib").nullcontext())
    module.save_to_path(tmp_path / "c", filled(params, 1.0))
    old = tmp_path / f".c.old-{atomic._HOST}-{os.getpid()}-{'e' * 32}"
    os.rename(tmp_path / "c", old)  # mid-swap: the old version moved away, the new one not yet in
    timer = threading.Timer(0.1, os.rename, (old, tmp_path / "c"))
    timer.start()
    try:
        assert the_value(module.restore_from_path(tmp_path / "c")) == 1.0
    finally:
        timer.join()
    with pytest.raises(ValueError, match="No checkpoint directory"):  # nothing there and no save under way: at once
        module.restore_from_path(tmp_path / "none")


# ----------------------------------------------------------------------------- class.pkl is a fallback
@pytest.mark.parametrize("pkl", ["garbage", "renamed_class", "missing", "not_a_dict"])
def test_from_checkpoint_without_a_usable_class_pkl(tmp_path, module, params, pkl):
    path = Path(module.save_to_path(tmp_path / "c", params))
    contents = {"garbage": b"\x00not a pickle", "renamed_class": b"cjaxrl_modules.rl_module\nNoSuchClass\n.",
                "not_a_dict": pickle.dumps([1, 2])}
    if pkl == "missing":
        (path / "class.pkl").unlink()
    else:
        (path / "class.pkl").write_bytes(contents[pkl])
    loaded, restored = RLModule.from_checkpoint(path)
    assert isinstance(loaded, DefaultPPORLModule) and loaded.model_config == module.model_config
    assert the_value(jax.tree_util.tree_map(lambda a, b: np.asarray(a == b, np.float32), restored, params)) == 1.0


def test_pickled_class_used_only_when_module_class_does_not_import(tmp_path, module, params):
    path = Path(module.save_to_path(tmp_path / "c", params))
    meta = (path / "metadata.json").read_text().replace("jaxrl_modules.algorithms.ppo", "renamed_package.ppo")
    (path / "metadata.json").write_text(meta)
    loaded, _ = RLModule.from_checkpoint(path)  # class.pkl still holds the class
    assert isinstance(loaded, DefaultPPORLModule)
    (path / "class.pkl").write_bytes(b"garbage")
    raises_naming(ValueError, lambda: RLModule.from_checkpoint(path), "renamed_package", "does not import",
                  "class.pkl cannot be unpickled")
