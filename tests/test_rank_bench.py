"""bench/rank.py's candidates and targets (bench/_rank_sets.py): a source never sees its target's examples, the text
sources are what they claim to be, and a cached candidate is reused only for the very recipe and data it was
trained from."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def rows(path: Path) -> list[tuple[str, str]]:
    """(label, text) of a TSV with a header, the text's whitespace collapsed as the benchmark writes it."""
    lines = Path(path).read_text().splitlines()
    return [(label, " ".join(text.split())) for label, text in (line.split("\t", 1) for line in lines[1:])]


def test_text_sources_are_disjoint_from_the_target_and_hold_what_they_claim(tmp_path, shared_data):
    import _rank_sets

    sets = _rank_sets.text_sets(tmp_path, source_cap=200, test_cap=50)
    assert Path(sets["sst2"]["source"]).read_text().startswith("label\tsentence\n")
    source, pool = rows(sets["sst2"]["source"]), rows(sets["sst2"]["target"])
    assert len(source) == 200 and all(len(text.split()) >= 5 for _, text in source)
    train = rows(shared_data / "sst2" / "train.tsv")
    assert len(pool) == len(train) - len(train) // 2
    # SST-2 repeats some phrases; no source row is a row of the target's pool unless SST-2 itself repeats it
    repeated = {row for row, count in Counter(train).items() if count > 1}
    assert not (set(source) & set(pool)) - repeated
    assert rows(sets["sst2"]["test"]) == rows(shared_data / "sst2" / "test.tsv")[:50]
    shuffled = rows(sets["sst2-shuffled"]["source"])
    assert [t for _, t in shuffled] == [t for _, t in source]  # the same sentences, their labels permuted
    assert Counter(label for label, _ in shuffled) == Counter(label for label, _ in source)
    assert [label for label, _ in shuffled] != [label for label, _ in source]
    words = sorted(len(t.split()) for _, t in source)
    assert all(label == str(int(len(t.split()) > words[100])) for label, t in rows(sets["length"]["source"]))
    language = rows(sets["language"]["source"])
    english = {t for _, t in source}
    assert Counter(label for label, _ in language) == {"0": 100, "1": 100}
    assert all((label == "0") == (text in english) for label, text in language)
    cedr = rows(sets["cedr"]["source"])
    assert len(cedr) == 200 and not english & {t for _, t in cedr}
    (tmp_path / "again").mkdir()  # seeded: the same files every run
    again = _rank_sets.text_sets(tmp_path / "again", source_cap=200, test_cap=50)
    assert all(Path(again[k]["source"]).read_bytes() == Path(sets[k]["source"]).read_bytes() for k in sets)


def test_a_cached_candidate_is_reused_only_for_the_same_recipe_and_data(tmp_path, tiny_recipe):
    import _rank_sets

    recipe = tiny_recipe(tmp_path, train={"epochs": 1})
    del recipe["output"]
    data = tmp_path / "data.bin"
    data.write_bytes(b"one")
    first = _rank_sets.cached_source(tmp_path / "cache", "tiny>x", recipe, [data])
    folder = Path(first.removeprefix("file:"))
    assert (folder / "model.safetensors").is_file() and folder.name.startswith("tiny-x-")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert _rank_sets.cached_source(tmp_path / "cache", "tiny>x", recipe, [data]) == first
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not trained again
    data.write_bytes(b"two")  # the data changed: another candidate
    assert _rank_sets.cached_source(tmp_path / "cache", "tiny>x", recipe, [data]) != first
    longer = {**recipe, "train": {**recipe["train"], "epochs": 2}}
    assert _rank_sets.cached_source(tmp_path / "cache", "tiny>x", longer, [data]) != first
    assert not list((tmp_path / "cache").glob("*.partial"))
