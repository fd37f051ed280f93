"""A magnitude cut in refitted sub-steps (snndeploy.prune.descent): exact per-layer counts, the methods that use it
(one-shot magnitude, SET / RigL's first cut, Deep R's start), and lava-dl's trained MNIST network cut to 98 %."""

from __future__ import annotations

import itertools

import pytest
from test_prune_engine import mlp, spikes
from test_prune_methods import run

from snndeploy.loader import load_model
from snndeploy.prune import descent, scores
from snndeploy.prune.engine import PruningEngine
from snndeploy.prune.finetune import DatasetTrainer
from snndeploy.prune.sparse import er_densities


def counts(engine: PruningEngine) -> dict[int, int]:
    return descent.live_counts(engine)


@pytest.mark.parametrize("start,final,substeps", [(1000, 20, 5), (100, 0, 4), (50, 50, 3), (7, 1, 1), (10, 9, 5)])
def test_cascade_ends_at_the_final_count_and_never_rises(start, final, substeps):
    steps = descent.cascade(start, final, substeps)
    assert len(steps) == substeps and steps[-1] == final
    assert all(a >= b for a, b in zip([start] + steps, steps, strict=False))


def test_cascade_keeps_the_same_share_at_every_step():
    steps = descent.cascade(10000, 100, 4)
    shares = [b / a for a, b in zip([10000] + steps, steps, strict=False)]
    assert max(shares) - min(shares) < 0.01, shares


@pytest.mark.parametrize("allocation", ["erk", "global", "layer"])
def test_kept_at_predicts_what_prune_weights_keeps(allocation):
    net = mlp()
    engine = PruningEngine(net)
    score = scores.weight_magnitude(engine)
    predicted = descent.kept_at(engine, 0.9, allocation, score)
    engine.prune_weights(0.9, score, allocation)
    assert predicted == counts(engine)


def test_descend_reaches_every_layers_count_and_fits_each_step():
    net = mlp()
    engine = PruningEngine(net)
    final = descent.kept_at(engine, 0.95, "erk", scores.weight_magnitude(engine))
    info = descent.descend(engine, net, final, 4, [spikes(net, n=8, seed=s) for s in range(2)], 0.01)
    assert counts(engine) == final
    assert info["substeps"] == 4 and len(info["current_error_after"]) == 4
    kinds = [r["kind"] for r in engine.records]
    assert kinds == ["prune_weights", "reassign_ineffective", "reconstruct"] * 4


def test_one_shot_magnitude_cuts_in_substeps_and_the_runner_does_not_refit_again(tmp_path):
    _, result, _ = run(tmp_path, "magnitude", 0.9, cut_substeps=3, reconstruct_batches=1)
    entry = result.report["history"][0]
    assert entry["descent"]["substeps"] == 3 and "reconstructed" not in entry
    assert abs(entry["weight_sparsity"] - 0.9) < 0.01
    _, result, _ = run(tmp_path / "one", "magnitude", 0.9, cut_substeps=1, reconstruct_batches=1)
    entry = result.report["history"][0]
    assert "descent" not in entry and "reconstructed" in entry


def test_criticality_over_prunes_in_substeps_then_regrows_what_they_removed(tmp_path):
    runner, result, _ = run(tmp_path, "criticality", 0.9, steps=1, calib_batches=1, cut_substeps=3,
                            reconstruct_batches=1, reassign_ineffective=False)
    entry = result.report["history"][0]
    assert entry["over_descent"]["substeps"] == 3 and entry["over_target"] > 0.9
    # everything the sub-steps removed is a regrowth candidate; the regrowth brings the run back to its target
    assert entry["regrown"] > 0 and entry["pruned"] > entry["regrown"]
    assert abs(entry["weight_sparsity"] - 0.9) < 0.01
    kinds = [r["kind"] for r in result.report["records"]]
    assert kinds[:9] == ["prune_weights", "reassign_ineffective", "reconstruct"] * 3 and "regrow_weights" in kinds


@pytest.mark.parametrize("method", ["set", "rigl"])
def test_set_and_rigl_descend_to_their_erdos_renyi_counts_from_a_trained_start(tmp_path, method):
    runner, result, _ = run(tmp_path, method, 0.9, iterations=1, select_best=False, init_select="magnitude",
                            cut_substeps=3, reconstruct_batches=1)
    init = result.report["history"][0]
    assert init["descent"]["substeps"] == 3
    shapes = [tuple(layer.mask.mask.shape) for layer in runner.engine.layers]
    want = [min(layer.mask.mask.numel(), max(1, round(d * layer.mask.mask.numel()))) for layer, d
            in zip(runner.engine.layers, er_densities(shapes, 0.1, "erk" if method == "rigl" else "er"), strict=True)]
    history_counts = [entry["active"] for entry in init["layers"]]
    assert history_counts == want


def test_deep_r_starts_from_its_fixed_counts_reached_in_substeps(tmp_path):
    runner, result, _ = run(tmp_path, "deepr", 0.9, epochs=1, cut_substeps=3, reconstruct_batches=1)
    descents = [r for r in result.report["records"] if r["kind"] == "descent"]
    assert len(descents) == 1 and descents[0]["substeps"] == 3
    _, plain, _ = run(tmp_path / "one", "deepr", 0.9, epochs=1, cut_substeps=1)
    assert not any(r["kind"] == "descent" for r in plain.report["records"])


def test_a_98_percent_cut_of_lava_dl_mnist_mlp_in_substeps_keeps_it_alive(fixtures_dir):
    """lava-dl's trained netx MNIST network (784-128-64-10) cut to 98 % by magnitude (ERK), no fine-tuning: one cut
    silences it (14 % on 2,000 digits), five refitted sub-steps keep it far above that (54 %)."""
    path = fixtures_dir / "mnist-mlp-128" / "network.net"
    accuracy = {}
    for substeps in (1, 5):
        net = load_model(path)
        data = DatasetTrainer("mnist", net, batch_size=64, subset=1000, test_subset=500, progress=False, threads=1)
        engine = PruningEngine(net)
        final = descent.kept_at(engine, 0.98, "erk", scores.weight_magnitude(engine))
        if substeps == 1:
            engine.prune_weights(0.98, scores.weight_magnitude(engine), "erk")
        else:
            descent.descend(engine, net, final, substeps,
                            [x for x, _ in itertools.islice(data.train_batches(), 8)], 0.01)
        assert counts(engine) == final
        accuracy[substeps] = data.evaluate(net)["accuracy"]
    assert accuracy[5] > accuracy[1] + 0.2, accuracy
