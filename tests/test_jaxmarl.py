"""JaxMARL envs in one jit (issue 12): `jaxmarl:<name>` envs, every agent acting through one shared
`default_policy` (JaxMARL's IPPO default) or through `multi_agent()` policies (stacked when identical),
trained by the generic all-in-jit loop; bad env names and env_configs are named."""

import json

import jax
import numpy as np
import pytest

from jaxrl_modules.algorithms.jaxmarl_runner import JaxMarlRunner, make_jaxmarl
from jaxrl_modules.algorithms.ppo import PPOConfig
from jaxrl_modules.columns import Columns

pytest.importorskip("jaxmarl")
SPREAD = "jaxmarl:MPE_simple_spread_v3"


def config(envs=4, steps=32):
    return (PPOConfig().environment(SPREAD).env_runners(num_envs_per_env_runner=envs, rollout_fragment_length=steps)
            .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh"})
            .training(lr=2.5e-3, train_batch_size_per_learner=envs * steps, minibatch_size=envs * steps * 3 // 4,
                      num_epochs=4, entropy_coeff=0.01, grad_clip=0.5))


def test_an_unknown_name_lists_close_registered_names():
    with pytest.raises(ValueError, match=r"Unknown JaxMARL environment 'MPE_simple_sprd_v3'.*MPE_simple_spread_v3"):
        make_jaxmarl("jaxmarl:MPE_simple_sprd_v3")
    with pytest.raises(ValueError, match=r"Unknown JaxMARL environment ''"):
        make_jaxmarl("jaxmarl:")


def test_an_env_config_typo_is_named_not_ignored():
    from jaxrl_modules.envs.registry import EnvConfigError

    assert make_jaxmarl(SPREAD, {"num_agents": 4}).num_agents == 4
    with pytest.raises(EnvConfigError, match=r"no keyword argument\(s\) \['num_agent'\].*did you mean 'num_agents'"):
        make_jaxmarl(SPREAD, {"num_agent": 4})  # jaxmarl.make alone would ignore it
    with pytest.raises(TypeError, match=r"env_config of 'jaxmarl:MPE_simple_spread_v3' must be a dict.*list"):
        make_jaxmarl(SPREAD, ["num_agents"])
    assert make_jaxmarl("jaxmarl:HeuristicEnemySMAX", {"scenario": "3m", "attack_mode": "random"}).num_agents == 3
    with pytest.raises(ValueError, match=r"env_config\['scenario'\].*SMAC map name.*got '3mm'"):
        make_jaxmarl("jaxmarl:HeuristicEnemySMAX", {"scenario": "3mm"})
    with pytest.raises(EnvConfigError, match=r"does not fit environment 'jaxmarl:HeuristicEnemySMAX'.*'max_step'"):
        make_jaxmarl("jaxmarl:HeuristicEnemySMAX", {"max_step": 10})


def random_act(n_actions, module_ids=("default_policy",)):
    def act(params, batch, rng):
        n = jax.tree_util.tree_leaves(batch)[0].shape[0]
        out = {Columns.ACTIONS: jax.random.randint(rng, (n,), 0, n_actions), Columns.ACTION_LOGP: jax.numpy.zeros(n),
               Columns.ACTION_DIST_INPUTS: jax.numpy.zeros((n, n_actions))}
        return {mid: out for mid in module_ids}
    return act


def test_every_agent_of_every_env_is_a_row_of_one_batch_and_module_returns_sum_its_agents():
    env = make_jaxmarl(SPREAD)
    runner = JaxMarlRunner(env, 2, {"agent_0": "a", "agent_1": "b", "agent_2": "b"}, ["a", "b"])
    assert runner.num_agents == 3 and runner.observation_space.shape == (18,) and runner.action_space.n == 5
    state = runner.reset(jax.random.key(0))
    state, traj, stats = jax.jit(lambda s: runner.rollout(random_act(5, ("a", "b")), None, s, jax.random.key(1), 30))(state)
    assert traj["a"][Columns.OBS].shape == (30, 6, 18) and traj["b"][Columns.REWARDS].shape == (30, 6)
    assert np.asarray(traj["a"][Columns.LOSS_MASK]).reshape(30, 2, 3)[:, :, 0].all()
    assert not np.asarray(traj["a"][Columns.LOSS_MASK]).reshape(30, 2, 3)[:, :, 1:].any()
    assert int(stats["episodes"]) == 2  # MPE episodes last 25 steps: one ended per env
    rewards = np.asarray(traj["a"][Columns.REWARDS]).reshape(30, 2, 3)
    ends = np.asarray(traj["a"][Columns.TERMINATEDS]).reshape(30, 2, 3)[:, 0, 0]
    t = int(np.flatnonzero(ends)[0])
    episode = rewards[: t + 1].sum(axis=0)  # [env, agent]: each agent's return in each env's first episode
    assert np.isclose(float(stats["return_sum"]), episode.sum(), rtol=1e-5)  # the team: all agents
    assert np.isclose(float(stats["module_return_sum"]["a"]), episode[:, 0].sum(), rtol=1e-5)
    assert np.isclose(float(stats["module_return_sum"]["b"]), episode[:, 1:].sum(), rtol=1e-5)


def test_smax_units_that_die_leave_the_loss_and_training_stays_finite():
    smax = "jaxmarl:HeuristicEnemySMAX"
    runner = JaxMarlRunner(make_jaxmarl(smax, {"scenario": "3m"}), 4, {f"ally_{i}": "default_policy" for i in range(3)})
    state = runner.reset(jax.random.key(0))
    _, traj, stats = jax.jit(lambda s: runner.rollout(random_act(runner.action_space.n), None, s, jax.random.key(1), 120))(state)
    mask = np.asarray(traj["default_policy"][Columns.LOSS_MASK])
    done = np.asarray(traj["default_policy"][Columns.TERMINATEDS])
    # an episode's end terminates every agent's row, survivors included (SMAX's own per-agent done is "dead")
    assert done.reshape(120, 4, 3).all(axis=2).sum() == int(stats["episodes"]) > 0
    episode_over = np.repeat(done.reshape(120, 4, 3).all(axis=2), 3, axis=1)
    died_early = done & ~episode_over  # a unit died while its team fought on
    assert died_early.any(), "random play should lose units before the episode ends"
    t, row = np.argwhere(died_early)[0]
    assert mask[t, row] and not mask[t + 1, row]  # it learns from the step it died in, not after
    cfg = (PPOConfig().environment(smax, env_config={"scenario": "3m"})
           .env_runners(num_envs_per_env_runner=4, rollout_fragment_length=32)
           .training(train_batch_size_per_learner=128, minibatch_size=64, num_epochs=2))
    params, metrics = jax.jit(cfg.build_train_fn(3))(jax.random.key(0))
    assert int(metrics["first_nonfinite_iteration"][-1]) == -1
    losses = np.asarray(metrics["default_policy"]["total_loss"])
    assert losses.shape == (3,) and np.isfinite(losses).all() and set(params) == {"default_policy"}


@pytest.mark.slow
def test_ippo_with_a_shared_policy_improves_the_team_return_in_one_jit():
    params, metrics = jax.jit(config(envs=8, steps=128).build_train_fn(60))(jax.random.key(0))
    returns = np.asarray(metrics["episode_return_mean"])
    assert int(metrics["first_nonfinite_iteration"][-1]) == -1 and set(params) == {"default_policy"}
    assert np.array_equal(returns, np.asarray(metrics["module_episode_return_mean/default_policy"]), equal_nan=True)
    assert returns[-5:].mean() > returns[:5].mean() + 8, returns  # about -83 -> -68 in 61k env steps


def test_train_runs_the_jitted_iteration_and_four_vmapped_seeds_differ():
    algo = config().build()
    result = algo.train()
    assert result["num_env_steps_sampled_lifetime"] == 4 * 32 and np.isfinite(result["env_runners"]["episode_return_mean"])
    per_module = result["env_runners"]["module_episode_returns_mean"]
    assert list(per_module) == ["default_policy"] and per_module["default_policy"] == result["env_runners"]["episode_return_mean"]
    from jaxrl_modules.algorithms.multi_seed import MultiSeedAlgorithm

    seeds = MultiSeedAlgorithm(config(), 2)
    per_seed = seeds.train()["seeds"]
    for i, r in enumerate(per_seed):
        assert r["env_runners"]["module_episode_returns_mean"]["default_policy"] == r["env_runners"]["episode_return_mean"]
        assert seeds.algorithm_for_seed(i)._module_returns["default_policy"].last == r["env_runners"]["episode_return_mean"]
    evaluation = algo.evaluate(3)["env_runners"]
    assert len(evaluation["episode_returns"]) == 3 and all(np.isfinite(evaluation["episode_returns"]))
    assert algo.evaluate(3)["env_runners"]["episode_returns"] == evaluation["episode_returns"]  # seeded: the same
    train = config().build_train_fn(2)
    params, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.key(0), 4))
    leaf = np.asarray(jax.tree_util.tree_leaves(params["default_policy"])[0])
    assert leaf.shape[0] == 4 and len({x.tobytes() for x in leaf}) == 4  # 4 seeds, 4 different results
    returns = np.asarray(metrics["episode_return_mean"])
    assert returns.shape == (4, 2) and len(set(returns[:, -1].tolist())) == 4


def test_save_restore_resumes_exactly_as_an_uninterrupted_run(tmp_path):
    straight = config().build()
    for _ in range(3):
        straight.train()
    first = config().build()
    first.train()
    first.save_to_path(tmp_path / "algo")
    resumed = config().build()
    resumed.restore_from_path(tmp_path / "algo")
    assert resumed.iteration == 1
    resumed.train(), resumed.train()
    for a, b in zip(jax.tree_util.tree_leaves(straight.get_params()), jax.tree_util.tree_leaves(resumed.get_params())):
        assert np.array_equal(a, b)
    env_a, env_b = (jax.tree_util.tree_leaves(x.train_state.runner) for x in (straight, resumed))
    assert all(np.array_equal(a, b) for a, b in zip(env_a, env_b))  # the env state travels in the checkpoint


def per_agent(**settings):
    return config(**settings).multi_agent(policies={"p0", "p1", "p2"},
                                          policy_mapping_fn=lambda agent, episode, **kw: "p" + agent[-1])


def test_three_per_agent_policies_train_stacked_and_end_different():
    from jaxrl_modules.algorithms.ppo.stacked_learner import StackedPPOLearner

    algo = per_agent().build()
    assert isinstance(algo.learner, StackedPPOLearner) and algo.learner.module_ids == ["p0", "p1", "p2"]
    result = algo.train()
    assert set(result["learners"]) == {"p0", "p1", "p2"} and np.isfinite(result["env_runners"]["episode_return_mean"])
    params = algo.get_params()
    kernels = [jax.tree_util.tree_leaves(params[m])[0] for m in ("p0", "p1", "p2")]
    assert not np.array_equal(kernels[0], kernels[1]) and not np.array_equal(kernels[1], kernels[2])
    assert len(algo.evaluate(2)["env_runners"]["episode_returns"]) == 2


def test_a_mixed_mapping_trains_a_shared_and_a_solo_policy_of_another_structure_with_masked_rows():
    from jaxrl_modules.algorithms.ppo.learner import PPOLearner
    from jaxrl_modules.multi_rl_module import MultiRLModuleSpec
    from jaxrl_modules.rl_module_spec import RLModuleSpec

    cfg = config().multi_agent(policies={"shared", "solo"},
                               policy_mapping_fn=lambda agent, episode, **kw: "solo" if agent == "agent_2" else "shared")
    cfg = cfg.rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
        "shared": RLModuleSpec(), "solo": RLModuleSpec(model_config={"fcnet_hiddens": [32]})}))
    assert type(cfg.build().learner) is PPOLearner  # the dict path: the policies differ in structure
    params, metrics = jax.jit(cfg.build_train_fn(3))(jax.random.key(0))
    assert sorted(params) == ["shared", "solo"] and int(metrics["first_nonfinite_iteration"][-1]) == -1
    solo = params["solo"]["actor_encoder" if "actor_encoder" in params["solo"] else "encoder"]
    assert solo["mlp"]["dense_0"]["kernel"].shape[1] == 32
    returns = {m: np.asarray(metrics[f"module_episode_return_mean/{m}"]) for m in ("shared", "solo")}
    team = np.asarray(metrics["episode_return_mean"])
    assert np.allclose(returns["shared"] + returns["solo"], team, rtol=1e-5)  # two agents' returns plus one's
    runner = cfg.build().runner
    masks = {m: np.asarray(x).reshape(4, 3) for m, x in runner.module_masks().items()}
    assert masks["solo"].tolist() == [[False, False, True]] * 4 and masks["shared"].tolist() == [[True, True, False]] * 4


def test_an_unknown_module_id_from_the_mapping_is_named():
    bad = config().multi_agent(policies={"p0"}, policy_mapping_fn=lambda agent, episode, **kw: "p9")
    with pytest.raises(ValueError, match=r"policy_mapping_fn returned unknown ModuleID\(s\) \['p9'\].*policies \['p0'\]"):
        bad.build()


@pytest.mark.slow
def test_stacked_per_agent_policies_improve_the_team_return():
    params, metrics = jax.jit(per_agent(envs=8, steps=128).build_train_fn(40))(jax.random.key(0))
    returns = np.asarray(metrics["episode_return_mean"])
    assert returns[-5:].mean() > returns[:5].mean() + 5, returns  # about -86 -> -78 in 41k env steps


def test_identical_per_agent_policies_trace_one_vmapped_loss(monkeypatch):
    """Three identical policies train through one loss of one module, vmapped over the three (whose
    params end different, above); two policies of different structure go through the dict learner,
    whose loss holds one PPO loss per policy."""
    from jaxrl_modules.multi_rl_module import MultiRLModuleSpec
    from jaxrl_modules.rl_module_spec import RLModuleSpec

    from jaxrl_modules.algorithms.ppo import learner as ppo_learner

    per_trace: list = []  # PPO losses inside each traced learner loss
    real_loss, real_module_loss = ppo_learner.PPOLearner.loss, ppo_learner.ppo_loss

    def loss(self, *args, **kwargs):
        per_trace.append(0)
        return real_loss(self, *args, **kwargs)

    def module_loss(*args, **kwargs):
        per_trace[-1] += 1
        return real_module_loss(*args, **kwargs)

    monkeypatch.setattr(ppo_learner.PPOLearner, "loss", loss)
    monkeypatch.setattr(ppo_learner, "ppo_loss", module_loss)
    jax.make_jaxpr(per_agent().build_train_fn(1))(jax.random.key(0))
    assert per_trace and set(per_trace) == {1}, per_trace
    per_trace.clear()
    different = config().multi_agent(
        policies={"shared", "solo"}, policy_mapping_fn=lambda agent, episode, **kw: "solo" if agent == "agent_2" else "shared"
    ).rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={
        "shared": RLModuleSpec(), "solo": RLModuleSpec(model_config={"fcnet_hiddens": [32]})}))
    jax.make_jaxpr(different.build_train_fn(1))(jax.random.key(0))
    assert per_trace and set(per_trace) == {2}, per_trace


def test_the_linear_lr_schedule_counts_a_minibatch_of_every_agents_rows():
    """lr_schedule="linear" anneals over the iterations: each iteration's updates cover envs x agents
    rows (3 agents), not envs alone, so iteration i's last update uses lr * (1 - i / 3)."""
    from jaxrl_modules.algorithms.optim import LEARNING_RATE

    cfg = config().training(lr=1e-3, lr_schedule="linear")  # 4 envs x 32 steps x 3 agents = 384 rows, minibatches of 96
    _, metrics = jax.jit(cfg.build_train_fn(3))(jax.random.key(0))
    assert np.allclose(np.asarray(metrics["default_policy"][LEARNING_RATE]), [1e-3, 1e-3 * 2 / 3, 1e-3 / 3], rtol=1e-5)


def test_per_agent_policies_act_and_learn_on_their_own_agents_rows_only():
    env = make_jaxmarl(SPREAD)
    runner = JaxMarlRunner(env, 2, {a: "p" + a[-1] for a in env.agents}, ["p0", "p1", "p2"])
    assert runner.gathered and runner.num_rows == 2  # 2 envs x 1 agent per policy
    state = runner.reset(jax.random.key(0))
    seen = []

    def act(params, batch, rng):
        seen.append({mid: b[Columns.OBS].shape for mid, b in batch.items()})
        # each policy answers with its ModuleID's number, so the combined actions show who acted where
        return {mid: {Columns.ACTIONS: jax.numpy.full(b[Columns.OBS].shape[0], int(mid[1])),
                      Columns.ACTION_LOGP: jax.numpy.zeros(b[Columns.OBS].shape[0]),
                      Columns.ACTION_DIST_INPUTS: jax.numpy.zeros((b[Columns.OBS].shape[0], 5))} for mid, b in batch.items()}

    full_obs = np.asarray(state.obs).reshape(2, 3, 18)
    _, traj, _ = runner.rollout(act, None, state, jax.random.key(1), 4)
    assert seen[0] == {"p0": (2, 18), "p1": (2, 18), "p2": (2, 18)}
    for j, mid in enumerate(["p0", "p1", "p2"]):
        assert traj[mid][Columns.OBS].shape == (4, 2, 18) and traj[mid][Columns.REWARDS].shape == (4, 2)
        assert np.array_equal(np.asarray(traj[mid][Columns.OBS][0]), full_obs[:, j])  # agent j's own observation
        assert np.asarray(traj[mid][Columns.ACTIONS]).tolist() == [[j, j]] * 4  # its own policy's action
        assert np.asarray(traj[mid][Columns.LOSS_MASK]).all()
    unbalanced = JaxMarlRunner(env, 2, {"agent_0": "a", "agent_1": "b", "agent_2": "b"}, ["a", "b"])
    assert not unbalanced.gathered and unbalanced.num_rows == 6  # all rows, masked per policy


def test_the_command_line_trains_evaluates_and_vmaps_seeds_on_a_jaxmarl_env(tmp_path, capsys):
    from jaxrl_modules.cli import main

    base = ["--env", SPREAD, "--runs-dir", str(tmp_path), "--quiet", "--iterations", "2", "--checkpoint-every", "2",
            "--num-envs", "2"]
    common = base + ["--config", "fcnet_hiddens=[8]", "train_batch_size_per_learner=64", "minibatch_size=32", "num_epochs=1"]
    assert main(["train", "--name", "one", *common]) == 0
    meta = json.loads((tmp_path / "one" / "checkpoints" / "2" / "algorithm" / "algorithm.json").read_text())
    assert meta["env"]["multi_agent"] and meta["env"]["agent_to_module"] == [[f"agent_{i}", "default_policy"] for i in range(3)]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "one" / "checkpoints" / "2" / "algorithm"), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "env: jaxmarl:MPE_simple_spread_v3" in out and "mean return over 3 episodes: -" in out, out
    assert main(["train", "--name", "seeds", "--num-seeds", "2", *common]) == 0
    for bad, message in ((["--name", "dqn", *base, "--algo", "dqn"], "multi-agent env, which only --algo ppo trains"),
                         (["--name", "typo", *common, "--env-config", "num_agent=4"], "--env-config key 'num_agent'")):
        with pytest.raises(SystemExit) as info:
            main(["train", *bad])
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("algo", ["dqn", "sac"])
def test_off_policy_algorithms_refuse_jaxmarl_envs_by_name(algo):
    from jaxrl_modules.algorithms.dqn import DQNConfig
    from jaxrl_modules.algorithms.sac import SACConfig

    config = {"dqn": DQNConfig, "sac": SACConfig}[algo]().environment(SPREAD)
    with pytest.raises(ValueError, match=r"(DQN|SAC) does not train on JaxMARL envs.*expected PPOConfig"):
        config.build()
