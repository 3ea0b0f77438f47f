"""`zoo rank`, measured: do the transferability scores order candidate bases as fine-tuning them would, and at what
fraction of the compute?

Candidates are built the way a team's registry would grow (bench/_rank_sets.py says which and why): for the image
targets, ResNet-18 sources trained from scratch on halves of MNIST digits, CIFAR-10 photographs and PneumoniaMNIST
X-rays (two training lengths for two of them), a descendant of each fine-tuned on another source, a random
initialisation, and ImageNet EfficientNet-Lite0; for the text target (SST-2 sentiment), all-MiniLM-L6-v2 and MiniLM
fine-tuned on different text sets (SST-2's other half, Russian CEDR, unrelated tasks, shuffled labels), and MiniLM
trained from scratch. The targets' few labels and test examples come from the halves the sources never saw.

For each target, `zoo_core.rank` scores every candidate (end to end: loading, features, scores; timed); then every
candidate is trained with the default recipe (the strategy `zoo_core.defaults.RECOMMENDED` names for the modality,
with its defaults: auto for images, i.e. two fine-tunes and the one better on validation kept, at the default
length; lora for text, cut to 10 epochs, see EPOCHS) and evaluated on the target's test split (timed), once per
seed. Each seed draws other labelled examples. Reported per target and score: Kendall's tau and the weighted tau
(LogME's measure; it stresses the top of the ranking) between the score and the mean test accuracy over the seeds;
what a user who fine-tunes only the top of the ranking gives up: "top-1" ("top-3") is the best mean accuracy among
the score's first (first three) candidates less the best candidate's (0.000: the best was among them); and the
ceiling: the mean tau between two seeds' accuracies (how well the ground truth agrees with itself: with ~10
candidates and a few dozen labels, a score cannot be expected to do better); with 4 or more seeds also the mean of
half the seeds against the other half's (how well a ground truth of that many seeds agrees with itself).
What the scores are meant to save, for comparison: "once" is every candidate fine-tuned once by the default recipe
(the full compute), one seed's accuracies against the mean of the other seeds, and every score is judged against
those same means too ("rest", like for like); `--proxy-epochs IMAGE,TEXT` adds a cheaper brute force, the default
recipe cut to that many epochs and judged on the validation split, never test (bench/_rank_proxy.py), timed, with
its compute ratio; with an even number of seeds, "oracle" estimates the tau a perfect score would reach against this
ground truth (from the halves' agreement, bench/_rank_taus.py). `--published` adds four published scores `zoo rank` does
not offer (SFDA, GBC, TransRate, PARC; bench/_published_scores.py), computed on the same features after the timed
ranking. The compute ratio divides one seed's fine-tuning and evaluation of every candidate by the ranking's seconds
(for text the default recipe's full length would train 5x longer: its ratio printed is a lower bound). Anchor:
LogME's paper reports a mean weighted tau of 0.665 on its benchmark.

Targets: mnist (images, 10 labels a class), cifar (images, 32: see K), sst2 (text, 32); pneumonia (2 classes) is
run only when named: its candidates all fine-tuned to 0.81-0.85 and three seeds disagreed (seed-vs-seed tau -0.13,
bench/results/rank-full-pneumonia.txt), so no score can be judged there. The candidates are kept in `--cache`
between runs (training them is most of a cold run); `--log FILE` appends one JSON line per fine-tune and a run with
the same log skips those already measured (a stopped run resumes). `--quick` (a developer's check): smaller sources,
2 seeds, 5 epochs, 300 test examples. `--jobs N` (default: the cores) trains the candidates, then runs the
fine-tunes, in N worker processes of one thread each (bench/_pool.py; candidates in waves, a descendant after its
parent, each in a fresh process): the same results as one after another on one thread (every --quick candidate's
weights, bit for bit; every full-run fine-tune's accuracy). `--json` adds one JSON object on the last line.
Full run, --jobs 2 on this 2-core machine: cold (empty cache) 40.7 min at load 3-7, candidates 18.6 min of it
(bench/results/rank-cold.txt); warm 14.6 min on the quiet machine (bench/results/rank-full.txt, section 10).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import _published_scores
import _rank_proxy
import _rank_sets as rs
from _common import emit, options, require_shared_data, run, set_threads
from _pool import cores, in_workers
from _rank_taus import figures, proxy_taus, taus_for

from zoo_core.transferability import SCORE_LABELS

# labels a class. CIFAR-10 at 10 a class was too small to rank against (stop 15's diagnosis, decided before its
# tau was measured, bench/results/rank-full.txt): every candidate's LogME was 0.03-0.08 nats above the no-signal
# floor (its evidence maximised correctly: 3-16 effective parameters from 100 examples) and the fine-tunes' own
# seed-vs-seed tau was 0.56, so the ground truth itself could hardly be ranked; 32 a class gives the scores more
# examples and each fine-tune more steps and a less noisy accuracy
K = {"mnist": 10, "cifar": 32, "pneumonia": 10, "sst2": 32}
# the ground truth's training length: None is the default recipe's own (no epochs in the recipe: 10 epochs and at
# least 100 optimizer steps for images, 5 and 100 for text); text is cut to 10 epochs (20 steps of 64 sentences) by
# default, because its default length (100 steps, ~190 s of CPU a MiniLM run) would take the full run past an hour
# (`--text-epochs default` measures it)
EPOCHS = {"image": None, "text": 10}


def target_data(target: str, sets: dict, modality: str) -> dict:
    # validation (for the kept epoch) is carved from the target's pool, 100 examples: a few-label user's size, and
    # evaluated every epoch, 10% of a 33,000-sentence pool cost more than the training itself
    extra = {"labels_per_class": K[target], "limit": {"val": 100}}
    if modality == "image":
        return rs.image_data(sets[target]["target"], **extra)
    return rs.text_data(sets[target]["target"], sets[target]["test"], **extra)


def fine_tune(base: str, data: dict, strategy: str, epochs: int | None, seed: int, out: Path) -> float:
    accuracy = run(rs.target_recipe(base, data, strategy, epochs, seed, out)).metrics["accuracy"]
    shutil.rmtree(out)  # hundreds of checkpoints in a full run would fill gigabytes
    return accuracy


def run_key(target: str, refs: dict, strategy: str, epochs: int | None, test_cap: int, quick: bool, name: str,
            seed: int) -> str:
    """A fine-tune's key in --log: everything that determines its result."""
    return json.dumps([target, name, refs[name], strategy, seed, epochs, K[target], test_cap, quick])


def length(epochs: int | None) -> str:
    return "the default recipe's length" if epochs is None else f"{epochs} epochs"


def _fine_tune_job(job: dict) -> dict:
    """One ground-truth fine-tune in a worker process (bench/_pool.py), timed there."""
    begun = time.perf_counter()
    accuracy = fine_tune(job["base"], job["data"], job["strategy"], job["epochs"], job["seed"], Path(job["out"]))
    return {"accuracy": accuracy, "seconds": time.perf_counter() - begun}


class Log:
    """Finished fine-tunes, one JSON line each, keyed by everything that determines them: a run resumes."""

    def __init__(self, path: Path | None):
        self.path, self.done = path, {}
        if path and path.is_file():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                self.done[row["key"]] = row

    def get(self, key: str) -> dict | None:
        return self.done.get(key)

    def add(self, key: str, row: dict) -> None:
        self.done[key] = {"key": key, **row}
        if self.path:
            with self.path.open("a") as f:
                f.write(json.dumps(self.done[key]) + "\n")


def main() -> None:
    import zoo_core
    from zoo_core.defaults import RECOMMENDED

    parser = options(__doc__, "1,000-example sources, 2 seeds, 5 epochs, 300 test examples")
    parser.add_argument("--targets", default="mnist,cifar,sst2", help="comma-separated: mnist, cifar, sst2, pneumonia")
    parser.add_argument("--seeds", type=int, help="seeds of every fine-tune (default 3; --quick 2)")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                        / "zoo-bench" / "rank", help="where candidates are kept between runs (default %(default)s)")
    parser.add_argument("--log", type=Path, help="append each fine-tune's result here; skip those already in it")
    parser.add_argument("--jobs", type=int, default=cores(),
                        help="candidates trained and fine-tunes run at once, in as many worker processes of one "
                             "thread each (default: this machine's cores, here %(default)s); 1: here, in order, on "
                             "ZOO_BENCH_THREADS threads")
    parser.add_argument("--text-epochs", default=str(EPOCHS["text"]),
                        help="the text ground truth's epochs, or 'default' for the default recipe's length "
                             "(default %(default)s)")
    parser.add_argument("--probe", action="store_true", help="also the linear probe's accuracy as a ground truth")
    parser.add_argument("--published", action="store_true",
                        help="also score every candidate by published scores zoo rank does not offer (SFDA, GBC, "
                             "TransRate, PARC: bench/_published_scores.py), not timed, and report their taus")
    parser.add_argument("--proxy-epochs", help="also a brute-force baseline for the scores: every candidate trained by "
                        "the default recipe cut to this many epochs (IMAGE,TEXT, e.g. 1,2; one number for both) and "
                        "judged on validation, --proxy-seeds runs, timed; its taus and compute (bench/_rank_proxy.py)")
    parser.add_argument("--proxy-seeds", type=int, default=3, help="runs of the proxy (default %(default)s)")
    parser.add_argument("--report", action="store_true", help="fine-tune nothing: report the seeds --log holds for "
                        "every candidate (candidates come from --cache; the ranking is measured again)")
    args = parser.parse_args()
    if args.report and not args.log:
        parser.error("--report reads the fine-tunes from --log FILE")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: at least 1")
    if args.text_epochs != "default" and not (args.text_epochs.isdigit() and int(args.text_epochs) > 0):
        parser.error(f"--text-epochs {args.text_epochs}: a positive number of epochs, or 'default'")
    proxy_epochs = {}
    if args.proxy_epochs:
        cuts = args.proxy_epochs.split(",")
        if len(cuts) > 2 or not all(c.isdigit() and int(c) > 0 for c in cuts):
            parser.error(f"--proxy-epochs {args.proxy_epochs}: one or two positive numbers of epochs (IMAGE,TEXT)")
        proxy_epochs = {"image": int(cuts[0]), "text": int(cuts[-1])}
    if args.proxy_seeds < 1:
        parser.error(f"--proxy-seeds {args.proxy_seeds}: at least 1")
    begun = time.perf_counter()
    require_shared_data()
    set_threads()
    quick = args.quick
    targets = args.targets.split(",")
    unknown = [t for t in targets if t not in rs.IMAGE_TARGETS + rs.TEXT_TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}: choose from {', '.join(rs.IMAGE_TARGETS + rs.TEXT_TARGETS)}")
    seeds = args.seeds or (2 if quick else 3)
    text_epochs = None if args.text_epochs == "default" else int(args.text_epochs)
    epochs = {m: 5 for m in EPOCHS} if quick else {**EPOCHS, "text": text_epochs}
    source_cap, test_cap = (1000, 300) if quick else (2000, 1000)
    cache = args.cache / ("quick" if quick else "full")
    cache.mkdir(parents=True, exist_ok=True)
    log = Log(args.log)
    strategies = [None] + (["linear-probe"] if args.probe else [])  # None: the modality's recommended default
    labels = {**SCORE_LABELS, **(_published_scores.PUBLISHED if args.published else {})}  # the scores reported
    report = {"targets": {}, "quick": quick, "seeds": seeds, "epochs": epochs, "labels_per_class": K}

    # every candidate the targets need, built at once before any target: the image and text candidates together
    # in the --jobs workers (a cold run's longest part; the fine-tunes cannot start before their candidates anyway)
    start = time.perf_counter()
    modalities = {"image" if t in rs.IMAGE_TARGETS else "text" for t in targets}
    bases, sets, plan = {}, {}, []
    if "image" in modalities:
        sets.update(rs.image_halves(cache, source_cap, test_cap))
        bases["image"], image_plan = rs.image_candidates(sets, cache, quick)
        plan += image_plan
    if "text" in modalities:
        sets.update(rs.text_sets(cache, source_cap // 2, test_cap // 2))
        bases["text"], text_plan = rs.text_candidates(sets, cache, quick)
        plan += text_plan
    to_train = sum(not c.built() for c in plan)
    say = lambda message: print(f"  {message} ({time.perf_counter() - start:.0f} s)", flush=True)  # noqa: E731
    report["candidate_seconds"] = rs.build(plan, args.jobs, say)
    report["candidates_seconds"] = time.perf_counter() - start
    print(f"candidates ready in {report['candidates_seconds']:.0f} s, {to_train} of {len(plan)} trained now "
          f"({sum(report['candidate_seconds'].values()):.0f} s of builds; cache {cache})", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            modality = "image" if target in rs.IMAGE_TARGETS else "text"
            names, data = list(bases[modality]), target_data(target, sets, modality)
            default = RECOMMENDED[modality]
            start = time.perf_counter()
            ranked = zoo_core.rank(data, list(bases[modality].values()))
            rank_seconds = time.perf_counter() - start
            print(f"\ntarget {target}: ranked {len(ranked)} candidates in {rank_seconds:.1f} s", flush=True)
            by_ref = {r.candidate: r for r in ranked}
            failed = {r.candidate: r.error for r in ranked if r.error}
            if failed:
                raise SystemExit(f"target {target}: could not score {failed}")
            scores_of = {n: by_ref[bases[modality][n]].scores for n in names}
            if args.published:  # the same features again (after the timed ranking), scored by the published scores
                from zoo_core.rank_features import FeatureCache

                features = FeatureCache(data)
                for n in names:
                    embedded = features.embed(bases[modality][n])
                    scores_of[n] = {**scores_of[n], **_published_scores.scores(embedded.features, embedded.labels)}
            truth = {n: {} for n in names}
            per_seed = {n: {} for n in names}
            seconds = {}
            used = seeds
            for strategy in [default if s is None else s for s in strategies]:
                seconds[strategy], runs = 0.0, {n: [] for n in names}
                key_of = functools.partial(run_key, target, bases[modality], strategy, epochs[modality], test_cap,
                                           quick)

                if args.jobs > 1 and not args.report:
                    # the fine-tunes not yet in --log, seed by seed, in worker processes; the loop below then
                    # finds them logged (and retries here any that failed in a worker)
                    todo = [{"key": key_of(name, seed), "name": name, "base": bases[modality][name], "data": data,
                             "strategy": strategy, "epochs": epochs[modality], "seed": seed,
                             "out": str(Path(tmp) / f"{target}-{strategy}-{seed}-{name}")}
                            for seed in range(seeds) for name in names if log.get(key_of(name, seed)) is None]
                    for job, outcome in in_workers(_fine_tune_job, todo, args.jobs):
                        if isinstance(outcome, BaseException):
                            print(f"  {target} {strategy} seed {job['seed']} {job['name']}: failed in a worker "
                                  f"({type(outcome).__name__}: {outcome}); retried below", flush=True)
                            continue
                        log.add(job["key"], outcome)
                        print(f"  {target} {strategy} seed {job['seed']} {job['name']}: {outcome['accuracy']:.3f} "
                              f"({outcome['seconds']:.0f} s)", flush=True)
                for seed in range(seeds):  # seed by seed: a run stopped early still has whole seeds to report
                    rows = {}
                    for name in names:
                        ref = bases[modality][name]
                        key = key_of(name, seed)
                        rows[name] = log.get(key)
                        if rows[name] is None and not args.report:
                            t0 = time.perf_counter()
                            accuracy = fine_tune(ref, data, strategy, epochs[modality], seed,
                                                 Path(tmp) / f"{target}-{strategy}-{seed}")
                            rows[name] = {"accuracy": accuracy, "seconds": time.perf_counter() - t0}
                            log.add(key, rows[name])
                            print(f"  {target} {strategy} seed {seed} {name}: {accuracy:.3f} "
                                  f"({rows[name]['seconds']:.0f} s)", flush=True)
                    if any(row is None for row in rows.values()):
                        continue  # --report: a seed not measured for every candidate is left out
                    for name, row in rows.items():
                        runs[name].append(row["accuracy"])
                        seconds[strategy] += row["seconds"]
                used = min(used, len(runs[names[0]]))
                if not used:
                    break
                for name in names:
                    truth[name][strategy] = statistics.mean(runs[name])
                    per_seed[name][strategy] = runs[name]
            if not used:
                print(f"target {target}: no seed measured for every candidate in {args.log}")
                continue
            train_seconds = seconds[default] / used  # one default fine-tune and evaluation of every candidate
            print(f"\ntarget {target}: {K[target]} labels a class; ranking {len(names)} candidates "
                  f"{rank_seconds:.1f} s; one {default} of every candidate ({length(epochs[modality])}) and its "
                  f"evaluation {train_seconds:.1f} s ({train_seconds / rank_seconds:.0f}x)")
            columns = [default] + (["linear-probe"] if args.probe else [])
            print(f"{'candidate':22} " + " ".join(f"{c[:12]:>12}" for c in columns)
                  + "".join(f"{label:>10}" for label in labels.values()) + "  seeds")
            for name in names:
                cells = [f"{scores_of[name][s]:10.3f}" if s in scores_of[name] else f"{'-':>10}" for s in labels]
                print(f"{name:22} " + " ".join(f"{truth[name][c]:12.3f}" for c in columns) + "".join(cells)
                      + "  " + " ".join(f"{a:.3f}" for a in per_seed[name][default]))
            taus = taus_for(names, scores_of, truth, per_seed, columns, tuple(labels))
            proxy = None
            if proxy_epochs:
                proxy = _rank_proxy.measure(target, names, bases[modality], data, default, proxy_epochs[modality],
                                            K[target], test_cap, quick, args, log, Path(tmp))
                taus.update(proxy_taus(names, proxy, truth, per_seed, default))
                if proxy:  # one run of every candidate, against one ground-truth fine-tune of every candidate
                    seconds_a_run = statistics.mean(sum(row["seconds"] for row in rows.values()) for rows in proxy)
                    taus[f"proxy-acc/{default}"]["speedup"] = train_seconds / seconds_a_run
            for strategy in columns:
                ceiling = taus.get(f"seed-vs-seed/{strategy}", {}).get("tau")
                print(f"  Kendall's tau against the {strategy} accuracy: the mean over {used} seeds (weighted tau), "
                      "one seed's (mean over seeds, like for like with the ceiling), and the mean of all seeds but one "
                      "(rest: like for like with 'once')")
                for key, value in taus.items():
                    if key.endswith("/" + strategy) and (value["weighted_tau"], value.get("tau_rest")) != (None, None):
                        print(f"  {key:26}{figures([value])}  ({value['candidates']} candidates)")
                if proxy and strategy == default:
                    print(f"  {'':26} proxy: {default} cut to {proxy_epochs[modality]} epochs, judged on validation "
                          f"(taus: the mean of {len(proxy)} runs); a run of every candidate {seconds_a_run:.1f} s, "
                          f"{taus[f'proxy-acc/{default}']['speedup']:.0f}x less than the ground truth's")
                if f"once/{strategy}" in taus:
                    print(f"  {'':26} once: every candidate fine-tuned once by the default recipe (1x: the compute a "
                          "score saves), one seed's accuracies against the mean of the others")
                if ceiling is not None:
                    print(f"  {'ceiling':26} seed-vs-seed tau {ceiling:+.3f} (one seed's accuracies against another's)")
                halves = taus.get(f"half-vs-half/{strategy}")
                if halves is not None:
                    print(f"  {'':26} half-vs-half tau {halves['tau']:+.3f} (the mean of {halves['seeds_a_half']} "
                          f"seeds' accuracies against the other {halves['seeds_a_half']}', every split)")
                oracle = taus.get(f"oracle/{strategy}")
                if oracle is not None:
                    print(f"  {'':26} a perfect score's tau {oracle['tau']:+.3f} (estimated from the halves' "
                          f"agreement: the most any score can expect against this ground truth)")
            report["targets"][target] = {
                "modality": modality, "default": default, "seeds": used, "rank_seconds": rank_seconds,
                "train_seconds": train_seconds, "train_seconds_all": sum(seconds.values()),
                "speedup": train_seconds / rank_seconds, "taus": taus,
                "accuracy": truth, "accuracy_per_seed": per_seed, "scores": scores_of,
                "rank_seconds_per_candidate": {n: by_ref[bases[modality][n]].seconds for n in names}}

    print("\nmean over targets (tau against the mean accuracy of the default recipe; ceiling = seed-vs-seed)")
    done = report["targets"].values()
    for score in (*labels, *(_rank_proxy.ORDERS if proxy_epochs else ()), "once", "seed-vs-seed",
                  "half-vs-half", "oracle"):
        values = [t["taus"][f"{score}/{t['default']}"] for t in done if f"{score}/{t['default']}" in t["taus"]]
        if values:
            print(f"  {score:14}{figures(values)}  ({len(values)} targets)")
    speedups = [t["speedup"] for t in done]
    if speedups:
        print(f"  compute: ranking is {statistics.mean(speedups):.0f}x cheaper than one default fine-tune of every "
              f"candidate (min {min(speedups):.0f}x; the goal: >= 30x, mean tau >= 0.7)")
    proxies = [t["taus"][f"proxy-acc/{t['default']}"]["speedup"] for t in done
               if f"proxy-acc/{t['default']}" in t["taus"]]
    if proxies:
        print(f"  compute: the proxy is {statistics.mean(proxies):.0f}x cheaper than one default fine-tune of every "
              f"candidate (min {min(proxies):.0f}x)")
    # what a run costs, cold (candidates trained now) or warm (from --cache), fine-tunes measured now or logged
    report["run_seconds"] = time.perf_counter() - begun
    report["run_seconds_if_measured_now"] = sum(report["candidate_seconds"].values()) + sum(
        t["rank_seconds"] + t["train_seconds_all"] for t in done)
    print(f"  this run: {report['run_seconds']:.0f} s wall; candidates ready in {report['candidates_seconds']:.0f} s "
          f"(from --cache: ~0 s); "
          f"candidates, ranking and every fine-tune as measured (now or in --log) "
          f"{report['run_seconds_if_measured_now']:.0f} s")
    emit(report)


if __name__ == "__main__":
    main()
