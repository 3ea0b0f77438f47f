"""`zoo rank`: the transferability scores against their definitions, and the command end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from zoo_core import transferability
from zoo_core.transferability import _max_log_evidence, h_score, leep, log_evidence, logme, nce, ridge_loo


def direct_log_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """ln N(y; 0, I/beta + F F^T / alpha) / N, computed the slow way."""
    n = len(y)
    cov = np.eye(n) / beta + f @ f.T / alpha
    _, logdet = np.linalg.slogdet(cov)
    return float(-0.5 * (n * math.log(2 * math.pi) + logdet + y @ np.linalg.solve(cov, y))) / n


@pytest.mark.parametrize("n,d", [(40, 6), (8, 20)])  # more examples than features, and fewer (rank-deficient)
def test_logme_is_the_maximised_bayesian_evidence(n, d):
    rng = np.random.default_rng(0)
    f = rng.normal(size=(n, d))
    y = (f[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.float64)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    x, sigma = u.T @ y, s ** 2
    for alpha, beta in [(0.5, 2.0), (3.0, 0.7), (10.0, 10.0)]:
        assert log_evidence(alpha, beta, x, float(y @ y), sigma, n, d) == pytest.approx(
            direct_log_evidence(f, y, alpha, beta), rel=1e-9)
    best = _max_log_evidence(x, float(y @ y), sigma, n, d)
    grid = [direct_log_evidence(f, y, a, b) for a in np.logspace(-3, 3, 25) for b in np.logspace(-3, 3, 25)]
    assert best >= max(grid) - 1e-6  # the fixed point is the maximum, not just a stationary guess
    assert logme(f, y.astype(int)) == pytest.approx(np.mean([
        _max_log_evidence(u.T @ (y == c).astype(float), float((y == c).sum()), sigma, n, d) for c in (0, 1)]))


@pytest.mark.parametrize("n,d", [(200, 32), (100, 512)])
def test_logme_does_not_depend_on_the_feature_scale(n, d):
    # with fewer examples than dimensions, ln|A| must count alpha for the D - N null directions: LogME's reference
    # fixed-point code leaves them out, and its score then grows by (D - N) / 2N ln(c^2) when features grow by c
    # (its 100-image, 512-dimension value went 18.3 -> 27.7 for c = 10), ranking by feature scale and dimension
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), n // 10)
    f = rng.normal(size=(10, d))[y] * 0.3 + rng.normal(size=(n, d))
    assert logme(10 * f, y) == pytest.approx(logme(f, y), abs=1e-6)
    assert logme(f, y) < 0.5  # an evidence per example, not the reference's inflated 18.3


def brute_force_ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[float, float]:
    """Leave-one-out accuracy and squared error of ridge with an intercept, refitted without each example."""
    targets = np.eye(y.max() + 1)[y]
    correct, error = 0, 0.0
    for i in range(len(y)):
        kept = np.arange(len(y)) != i
        x_mean, t_mean = x[kept].mean(0), targets[kept].mean(0)
        xc = x[kept] - x_mean
        w = np.linalg.solve(xc.T @ xc + penalty * np.eye(x.shape[1]), xc.T @ (targets[kept] - t_mean))
        predicted = t_mean + (x[i] - x_mean) @ w
        correct += predicted.argmax() == y[i]
        error += float(((targets[i] - predicted) ** 2).sum())
    return correct / len(y), error


@pytest.mark.parametrize("n,d", [(30, 5), (30, 50)])  # more examples than features, and fewer
def test_ridge_is_the_leave_one_out_accuracy_at_the_penalty_with_the_least_left_out_error(n, d, monkeypatch):
    rng = np.random.default_rng(4)
    y = np.arange(n) % 3
    x = rng.normal(size=(3, d))[y] * 0.4 + rng.normal(size=(n, d))
    centred = x - x.mean(0)
    sigma = np.linalg.svd(centred, compute_uv=False) ** 2
    scale = sigma[sigma > 1e-10 * sigma.max()].mean()
    relative = np.array([0.01, 1.0, 30.0])
    folds = [brute_force_ridge(x, y, r * scale) for r in relative]
    for r, (accuracy, _) in zip(relative, folds, strict=True):
        monkeypatch.setattr(transferability, "RIDGE_PENALTIES", np.array([r]))
        assert ridge_loo(x, y) == pytest.approx(accuracy)  # the closed form is every refit's answer
    monkeypatch.setattr(transferability, "RIDGE_PENALTIES", relative)
    assert ridge_loo(x, y) == pytest.approx(min(folds, key=lambda fold: fold[1])[0])


def test_every_score_is_known_to_the_registry_its_api_and_the_model_page():
    from pathlib import Path
    from typing import get_args

    from registry_server.schemas import RankingIn
    from zoo_core.registry.rankings import SCORE_NAMES

    assert SCORE_NAMES == transferability.SCORES  # kept apart: the registry does not import numpy for a name list
    assert set(get_args(RankingIn.model_fields["by"].annotation)) == set(transferability.SCORES)
    page = (Path(__file__).parents[1] / "templates" / "model.html").read_text()
    assert all(f'"{name}":' in page for name in transferability.SCORES)  # each `by` has a label there


def test_informative_features_score_higher_than_noise():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 20)
    centres = rng.normal(size=(3, 32)) * 3
    informative = centres[labels] + rng.normal(size=(60, 32))
    noise = rng.normal(size=(60, 32))
    assert logme(informative, labels) > logme(noise, labels)
    assert ridge_loo(informative, labels) == 1.0 and ridge_loo(noise, labels) < 0.6  # chance is 1/3
    # H-score is at most C - 1 = 2 (all the variance between classes); noise in 32 dimensions fits some of it
    assert h_score(informative, labels) == pytest.approx(2.0, abs=0.1)
    assert h_score(noise, labels) < 1.5


def test_h_score_is_the_class_mean_spread_in_units_of_the_feature_covariance():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 500)  # many examples, few features: Ledoit-Wolf barely shrinks
    f = rng.normal(size=(1000, 3)) + np.outer(labels, [2.0, 0.0, 0.0])
    centred = f - f.mean(0)
    means = np.stack([centred[labels == c].mean(0) for c in (0, 1)])
    between = sum(0.5 * np.outer(m, m) for m in means)
    expected = np.trace(np.linalg.solve(np.cov(f.T, bias=True), between))
    assert h_score(f, labels) == pytest.approx(expected, rel=0.02)


def test_leep_and_nce_reward_a_source_head_that_predicts_the_labels():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 50)
    aligned = np.full((100, 4), 0.1 / 3)
    aligned[np.arange(100), labels * 2] = 0.9  # source classes 0 and 2 stand for the two target classes
    uninformative = rng.dirichlet(np.ones(4), size=100)
    assert nce(aligned, labels) == pytest.approx(0.0)  # Z determines Y: no conditional entropy left
    assert nce(uninformative, labels) < -0.3  # close to -ln 2
    assert leep(aligned, labels) > leep(uninformative, labels)
    assert leep(uninformative, labels) == pytest.approx(math.log(0.5), abs=0.1)
    assert leep(aligned, labels) <= 0


def test_zoo_rank_scores_registry_and_file_candidates(tmp_path, tiny_recipe, zoo):
    registry = tmp_path / "registry"
    env = {"ZOO_REGISTRY": str(registry)}
    recipe_path = tiny_recipe.write(tiny_recipe(tmp_path / "a", publish="acme/xray-tiny", train={"epochs": 3}),
                                    tmp_path / "source.yaml")
    zoo("train", str(recipe_path), "-q", env=env, check=True)
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "unused")["data"]))
    out = zoo("rank", str(data), "scratch:tinynet", "--candidates", "acme/*", "--json", env=env, check=True)
    rows = json.loads(out.stdout)
    assert [r["candidate"] for r in rows] == sorted([r["candidate"] for r in rows],
                                                     key=lambda c: -next(r["scores"]["logme"] for r in rows
                                                                         if r["candidate"] == c))
    by_name = {r["candidate"]: r for r in rows}
    trained, scratch = by_name["zoo:acme/xray-tiny"], by_name["scratch:tinynet"]
    assert trained["origin"] == "zoo:acme/xray-tiny@1" and trained["examples"] == 16
    assert set(trained["scores"]) == {"logme", "hscore", "leep", "nce", "ridge"}  # it kept its head: LEEP and NCE too
    assert set(scratch["scores"]) == {"logme", "hscore", "ridge"} and scratch["error"] is None
    assert "accuracy" in trained["metrics"]
    assert "registry" in trained["phases"] and "registry" not in scratch["phases"]  # where the seconds went
    assert {"weights", "forward", "scores"} <= set(scratch["phases"])
    table = zoo("rank", str(data), "acme/xray-tiny@1", "scratch:tinynet", env=env, check=True).stdout
    assert "ranked by logme on 16 labelled examples" in table and "xray-tiny" in table
    assert "fine-tune the first two or three" not in table  # two candidates: nothing to shortlist
    shortlist = zoo("rank", str(data), "acme/xray-tiny@1", "scratch:tinynet", f"file:{tmp_path / 'a' / 'out'}",
                    env=env, check=True).stdout
    assert "fine-tune the first two or three before you choose" in " ".join(shortlist.split())
    by_ridge = json.loads(zoo("rank", str(data), "acme/xray-tiny@1", "scratch:tinynet", "--by", "ridge", "--json",
                              env=env, check=True).stdout)
    assert [r["scores"]["ridge"] for r in by_ridge] == sorted((r["scores"]["ridge"] for r in by_ridge), reverse=True)


def test_zoo_rank_says_what_is_wrong(tmp_path, tiny_recipe, zoo):
    env = {"ZOO_REGISTRY": str(tmp_path / "empty")}
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump(tiny_recipe(tmp_path)["data"]))
    result = zoo("rank", str(data), "--candidates", "acme/*", env=env)
    assert result.returncode == 2 and "no registry model matches 'acme/*'" in result.stderr
    result = zoo("rank", str(data), "scratch:tinynet", "--by", "logmee", env=env)
    assert result.returncode == 2 and "unknown score 'logmee'" in result.stderr
    (tmp_path / "bad.yaml").write_text("base: scratch\n")
    result = zoo("rank", str(tmp_path / "bad.yaml"), "scratch:tinynet", env=env)
    assert result.returncode == 2 and "must be a recipe (with a data: section)" in result.stderr
    rows = json.loads(zoo("rank", str(data), "scratch:no-such-net", "--json", env=env, check=True).stdout)
    assert rows[0]["error"] and "no-such-net" in rows[0]["error"]


def test_rank_scores_are_recorded_in_the_registry_and_shown_on_the_model_page(tmp_path, tiny_recipe, zoo, serve):
    import httpx

    from zoo_core.client import open_registry

    root = tmp_path / "registry"
    recipe_path = tiny_recipe.write(tiny_recipe(tmp_path / "a", publish="acme/xray-tiny", train={"epochs": 3}),
                                    tmp_path / "source.yaml")
    zoo("train", str(recipe_path), "-q", env={"ZOO_REGISTRY": str(root)}, check=True)
    token = open_registry(root).create_token("lab")
    url = serve(root)
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "unused")["data"]))
    env = {"ZOO_TOKEN": token, "ZOO_REGISTRY": url}
    refused = zoo("rank", str(data), "scratch:tinynet", "--record", "tiny-xray", env=env)
    assert refused.returncode == 2 and "no candidate is a registry model" in refused.stderr
    refused = zoo("rank", str(data), "acme/xray-tiny", "--record", "../x", env=env)
    assert refused.returncode == 2 and "a data set name is" in refused.stderr
    rows = json.loads(zoo("rank", str(data), "acme/xray-tiny", "scratch:tinynet", "--record", "tiny-xray", "--json",
                          env=env, check=True).stdout)
    trained = next(r for r in rows if r["candidate"] == "zoo:acme/xray-tiny")
    place = rows.index(trained) + 1
    assert trained["recorded"] and not next(r for r in rows if r is not trained)["recorded"]
    assert len(trained["fingerprint"]) == 64 and rows[0]["fingerprint"] == rows[1]["fingerprint"]  # same data

    version = httpx.get(f"{url}/api/models/acme/xray-tiny/versions/1").json()
    [ranking] = version["rankings"]
    assert ranking["dataset"] == "tiny-xray" and ranking["rank"] == place and ranking["of"] == 2
    assert ranking["by"] == "logme" and ranking["score"] == pytest.approx(trained["scores"]["logme"])
    assert ranking["recorded_by"] == "lab" and ranking["examples"] == 16
    page = httpx.get(f"{url}/acme/xray-tiny/v/1").text
    assert "Ranked for data sets" in page and f"#{place} of 2" in page and "tiny-xray" in page
    shown = zoo("show", "acme/xray-tiny@1", env=env, check=True).stdout
    assert f"ranked: #{place} of 2 for tiny-xray by logme" in shown

    endpoint = f"{url}/api/models/acme/xray-tiny/versions/1/rankings"
    good = {"dataset": "x", "fingerprint": "a" * 64, "by": "logme", "scores": {"logme": 0.5}, "rank": 1, "of": 1,
            "examples": 4}
    assert httpx.post(endpoint, json=good).status_code == 401  # whoever ranks is recorded: a token is needed
    headers = {"Authorization": f"Bearer {token}"}
    bad = [{"dataset": "<script>"}, {"fingerprint": "zz"}, {"rank": 2}, {"of": 0}, {"by": "loss"},
           {"scores": {"hscore": 1.0}}, {"scores": {"logme": 0.5, "accuracy": 1.0}}, {"examples": 0}]
    for change in bad:
        answer = httpx.post(endpoint, json={**good, **change}, headers=headers)
        assert answer.status_code in (400, 422) and answer.json()["error"], change
    nan = json.dumps(good).replace("0.5", "NaN")  # one bad record must not break the page for everyone
    answer = httpx.post(endpoint, content=nan, headers={**headers, "Content-Type": "application/json"})
    assert answer.status_code in (400, 422) and "finite" in answer.text
    assert len(httpx.get(f"{url}/api/models/acme/xray-tiny/versions/1").json()["rankings"]) == 1  # nothing stored
    assert httpx.post(endpoint.replace("/1/", "/9/"), json=good, headers=headers).status_code == 404
    by_ridge = {**good, "dataset": "tiny-ridge", "by": "ridge", "scores": {"ridge": 0.75}}
    assert httpx.post(endpoint, json=by_ridge, headers=headers).status_code in (200, 201)
    assert "ridge LOO accuracy 0.75" in httpx.get(f"{url}/acme/xray-tiny/v/1").text  # the page labels every score


def test_scores_use_torch_thread_count_for_numpy(tmp_path, tiny_recipe, monkeypatch):
    """numpy's BLAS keeps to torch's thread count while scoring: its own default (every core) spun against busy
    cores (one LogME SVD 3-4 s instead of 0.14 s)."""
    import torch
    from threadpoolctl import threadpool_info

    import zoo_core.transferability as transferability

    seen = []
    real = transferability.logme

    def recording(features, labels):
        seen.append({pool["num_threads"] for pool in threadpool_info()})
        return real(features, labels)

    monkeypatch.setattr(transferability, "logme", recording)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ranked = transferability.rank(tiny_recipe(tmp_path / "unused")["data"], ["scratch:tinynet"], scores=["logme"])
    finally:
        torch.set_num_threads(threads)
    assert ranked[0].error is None and seen == [{1}]
