"""Few labels: the linear probe's standardisation and fit, best-epoch selection, imbalance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo_core.backbone import Head
from zoo_core.probe import fit_logistic, fit_probe


def test_a_feature_constant_on_the_training_set_cannot_explode_on_new_inputs():
    head = Head(4, 2, standardize=True)
    train = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    train[:, 0] = 0.0  # a dead ReLU channel on the few training images
    head.set_statistics(train)
    test = torch.tensor([[1.0, 0.5, -0.5, 0.2]])  # the channel wakes up on a test image
    standardised = (test - head.mean) / head.std
    assert standardised.abs().max() < 20  # the old 1e-6 clamp made it 1e6
    assert torch.allclose(head.std[1:], train[:, 1:].std(0))  # ordinary features keep their own std


def separable(n: int, d: int = 20, classes: int = 3, seed: int = 0):
    centres = np.random.default_rng(100).normal(size=(classes, d))  # one problem; `seed` draws its examples
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = centres[y] + rng.normal(size=(n, d))
    return torch.from_numpy(x).float(), y


def test_the_probe_solves_scikit_learns_objective():
    from sklearn.linear_model import LogisticRegression

    x, y = separable(60)
    ours = fit_logistic(x, torch.from_numpy(y), 3, C=0.5)
    theirs = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(x.numpy(), y)
    probabilities = torch.softmax(x.double() @ ours.weight.T + ours.bias, 1).numpy()
    assert np.allclose(probabilities, theirs.predict_proba(x.numpy()), atol=1e-4)


def test_the_cross_validated_probe_reaches_scikit_learns_accuracy():
    from sklearn.linear_model import LogisticRegressionCV

    x, y = separable(24, seed=1)  # 8 a class
    x_test, y_test = separable(600, seed=2)
    fit = fit_probe(x, y, 3)
    ours = float(((x_test.double() @ fit.weight.T + fit.bias).argmax(1).numpy() == y_test).mean())
    theirs = LogisticRegressionCV(Cs=10, max_iter=5000).fit(x.numpy(), y).score(x_test.numpy(), y_test)
    assert ours >= theirs - 0.01 and ours > 0.9
    assert fit.folds == 5 and len(fit.cv) == 17 and fit.C in [float(c) for c in fit.cv]


def test_balanced_class_weights_move_the_boundary_towards_the_majority():
    x, y = separable(40, classes=2, seed=3)
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:4]]  # 20 against 4
    x, y = x[keep], y[keep]
    plain = fit_probe(x, y, 2, C=0.01)
    balanced = fit_probe(x, y, 2, C=0.01, balanced=True)
    minority_share = [float(torch.softmax(x.double() @ f.weight.T + f.bias, 1)[:, 1].mean()) for f in (plain, balanced)]
    assert minority_share[1] > minority_share[0]


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_linear_probe_solvers_run_in_the_engine_and_are_recorded(tmp_path, tiny_recipe, solver):
    import yaml

    result = tiny_recipe.train(tmp_path, {"name": "linear-probe", "solver": solver})
    resolved = yaml.safe_load((result.checkpoint / "recipe.yaml").read_text())
    assert resolved["strategy"]["solver"] == solver
    if solver == "lbfgs":
        probe = resolved["resolved"]["probe"]
        assert probe["solver"] == "lbfgs" and probe["C"] > 0 and "cross-validation" in probe["selected_by"]
        assert len(result.history) == 1
    else:
        assert "probe" not in resolved["resolved"] and len(result.history) == 2
