"""bench/rank.py's figures: how well each score's order of the candidates agrees with the accuracy they reach
(Kendall's tau, weighted tau, and the top-1 / top-3 regret), and the ground truth's own agreement beside them (one
seed against another, half the seeds against the other half, a perfect score's estimated tau, and the brute force:
every candidate fine-tuned once)."""

from __future__ import annotations

import itertools
import statistics

import _rank_proxy
import numpy as np

from zoo_core.transferability import SCORES


def oracle_tau(half_vs_half: float, seeds: int) -> float | None:
    """An estimate of the tau a perfect score (the candidates' expected accuracies) would reach against the mean
    of `seeds` seeds, from how well two halves of them agree: Greiner's relation tau = 2/pi arcsin(r) turns each
    tau into a correlation, Spearman-Brown gives the reliability of the whole mean from the halves', and a
    perfect score correlates with a measurement by the square root of its reliability. None for an odd number of
    seeds (unequal halves) or halves that disagree."""
    if seeds % 2 or half_vs_half <= 0:
        return None
    r_half = np.sin(np.pi / 2 * half_vs_half)
    reliability = 2 * r_half / (1 + r_half)  # Spearman-Brown: twice the seeds of a half
    return float(2 / np.pi * np.arcsin(np.sqrt(reliability)))


def taus_for(names, scores_of, truth, per_seed, strategies, scores=SCORES) -> dict:
    from scipy.stats import kendalltau, weightedtau

    taus = {}
    for strategy in strategies:
        # the ground truth's own agreement: one seed's accuracies against another's (the ceiling)
        seeds = len(next(iter(per_seed.values()))[strategy])
        pairs = [kendalltau([per_seed[n][strategy][a] for n in names], [per_seed[n][strategy][b] for n in names])
                 .statistic for a in range(seeds) for b in range(a + 1, seeds)]
        ceiling = float(np.mean(pairs)) if pairs else None
        if ceiling is not None:
            taus[f"seed-vs-seed/{strategy}"] = {"tau": ceiling, "weighted_tau": None, "candidates": len(names)}
        # and with 4 or more seeds, the mean of half of them against the other half's (every split): how well a
        # ground truth of that many seeds agrees with itself
        halves = [kendalltau([statistics.mean(per_seed[n][strategy][s] for s in half) for n in names],
                             [statistics.mean(per_seed[n][strategy][s] for s in range(seeds) if s not in half)
                              for n in names]).statistic
                  for half in itertools.combinations(range(seeds), seeds // 2) if 0 in half] if seeds >= 4 else []
        if halves:
            taus[f"half-vs-half/{strategy}"] = {"tau": float(np.mean(halves)), "weighted_tau": None,
                                                "candidates": len(names), "seeds_a_half": seeds // 2}
            if (oracle := oracle_tau(float(np.mean(halves)), seeds)) is not None:
                taus[f"oracle/{strategy}"] = {"tau": oracle, "weighted_tau": None, "candidates": len(names)}
        # the brute force a score is meant to save: every candidate fine-tuned once (one seed), judged against the
        # mean of the other seeds; every score is judged against those same means too ("rest"), like for like
        rest = [[statistics.mean(a for i, a in enumerate(per_seed[n][strategy]) if i != s) for n in names]
                for s in range(seeds)] if seeds >= 2 else []
        for score in scores:
            scored = [n for n in names if score in scores_of[n]]
            if len(scored) < 3:
                continue
            x, y = [scores_of[n][score] for n in scored], [truth[n][strategy] for n in scored]
            # against single seeds too: like for like with the ceiling, which compares single seeds
            one = [kendalltau(x, [per_seed[n][strategy][s] for n in scored]).statistic for s in range(seeds)]
            rest_scored = [[r for n, r in zip(names, rest[s], strict=True) if n in scored] for s in range(len(rest))]
            against_rest = [kendalltau(x, r).statistic for r in rest_scored]
            # what a user who fine-tunes only the top of the ranking gives up: the best accuracy among the top 1
            # (top 3) by the score, less the best of every candidate (0: the best was among them); a candidate the
            # score cannot rate (LEEP and NCE need a source head) comes last, as `zoo rank` orders it
            best = max(truth[n][strategy] for n in names)
            # (candidates the score ties are taken worst first: a tie is no help in choosing)
            by_score = [a for _, a in sorted(zip(x, y, strict=True), key=lambda pair: (-pair[0], pair[1]))]
            taus[f"{score}/{strategy}"] = {"tau": float(kendalltau(x, y).statistic),
                                           "weighted_tau": float(weightedtau(y, x).statistic),
                                           "tau_one_seed": float(np.mean(one)), "candidates": len(scored),
                                           "tau_rest": float(np.mean(against_rest)) if rest else None,
                                           "weighted_rest": float(np.mean([weightedtau(r, x).statistic
                                                                           for r in rest_scored])) if rest else None,
                                           "regret_top1": by_score[0] - best, "regret_top3": max(by_score[:3]) - best}
        if rest:
            once = [[per_seed[n][strategy][s] for n in names] for s in range(seeds)]
            taus[f"once/{strategy}"] = {
                "tau": None, "weighted_tau": None, "candidates": len(names),
                "tau_rest": float(np.mean([kendalltau(once[s], rest[s]).statistic for s in range(seeds)])),
                "weighted_rest": float(np.mean([weightedtau(rest[s], once[s]).statistic for s in range(seeds)]))}
    return taus


def figures(values: list[dict]) -> str:
    """The mean over `values` (one target's entry, or one per target) of every figure they carry."""
    def mean(field: str) -> float | None:
        present = [v[field] for v in values if v.get(field) is not None]
        return statistics.mean(present) if present else None

    labels = {"tau": "tau", "weighted_tau": "weighted", "tau_one_seed": "one seed", "tau_rest": "rest",
              "weighted_rest": "weighted rest", "regret_top1": "top-1", "regret_top3": "top-3"}
    return "".join(f"  {label} {value:+.3f}" for field, label in labels.items() if (value := mean(field)) is not None)


def proxy_taus(names, proxy, truth, per_seed, strategy) -> dict:
    """Each proxy order's taus and regrets: every run's against the ground truth, averaged over the runs."""
    each = [taus_for(names, _rank_proxy.scores(rows), truth, per_seed, [strategy], tuple(_rank_proxy.ORDERS))
            for rows in proxy]
    fields = ("tau", "weighted_tau", "tau_one_seed", "tau_rest", "weighted_rest", "regret_top1", "regret_top3")
    return {f"{order}/{strategy}": {**{f: float(np.mean([t[f"{order}/{strategy}"][f] for t in each])) for f in fields},
                                    "candidates": len(names), "runs": len(each)}
            for order in _rank_proxy.ORDERS} if each else {}
