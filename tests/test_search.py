"""Full-text search with ranking (SQLite FTS5, PostgreSQL tsvector), the tag table, and the indexes following the
registry (a new `latest`, a yanked one, a rolled-back publish, a registry made before the indexes); on SQLite and
on a real PostgreSQL. Also the lineage of a long chain in one query."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect

from tests.cards import complete_card
from zoo_core.errors import NotFoundError
from zoo_core.registry.db import alembic_config
from zoo_core.registry.service import RegistryService
from zoo_core.registry.types import ANONYMOUS, Viewer


@pytest.fixture
def push(service, tmp_path):
    counter = iter(range(10_000))

    def make(model: str, body: str = "A model.", tags: str = "x", title: str = "Model", **options):
        folder = tmp_path / f"ckpt{next(counter)}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(f"weights {model} {body}".encode())
        (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.9}))
        (folder / "README.md").write_text(complete_card(title, license="mit", tags=tags, body=body))
        return service.push_folder(folder, model, **options)

    return make


def ids(found) -> list[str]:
    return [r["id"] for r in found["results"]]


def test_words_match_whole_words_and_beginnings_ranked_by_field(service, push):
    push("acme/chest-xray", body="Finds pneumonia on radiographs.")  # the word in the name
    push("acme/lungs", body="Trained on chest xray images of pneumonia patients.")  # in the card only
    push("acme/plain", body="Nothing of the kind.")
    assert ids(service.search("xray", sort="relevance")) == ["acme/chest-xray", "acme/lungs"]
    assert ids(service.search("pneumonia xray", sort="relevance")) == ["acme/chest-xray", "acme/lungs"]
    assert set(ids(service.search("radio"))) == {"acme/chest-xray"}  # a word's beginning
    assert service.search("ray")["total"] == 0  # not the middle of a word
    assert ids(service.search("xray pneumonia nothing")) == []  # every word must match
    # hostile text is words, never query syntax
    for query in ('xray" OR "plain', "NEAR(xray plain)", "xray*", "xray & plain | lungs", "-xray"):
        assert "acme/plain" not in ids(service.search(query)), query


def test_hyphenated_words_match_their_joined_and_split_forms(service, push):
    """Both tokenizers read "X-ray" as the words x and ray: `xray` found nothing in the demo registry, whose cards
    say X-ray. A query word finds its hyphenated forms and a hyphenated query word its joined and split forms."""
    push("acme/scans", body="Reads chest X-ray images.")
    push("acme/joined", body="Reads xray images; finetune of a ResNet.")
    push("acme/tuned", body="A fine-tune of ResNet-50, state-of-the-art.")
    push("acme/spaced", body="An x ray reader.")
    push("acme/other", body="Nothing of the kind: x marks the ray of light.")
    assert set(ids(service.search("xray"))) == {"acme/scans", "acme/joined"}
    assert set(ids(service.search("x-ray"))) == {"acme/scans", "acme/joined", "acme/spaced"}
    assert set(ids(service.search("X-Ray images"))) == {"acme/scans", "acme/joined"}
    assert set(ids(service.search("finetune"))) == {"acme/joined", "acme/tuned"}
    assert set(ids(service.search("fine-tune"))) == {"acme/joined", "acme/tuned"}
    assert ids(service.search("resnet50")) == ["acme/tuned"] and ids(service.search("stateoftheart")) == ["acme/tuned"]
    assert set(ids(service.search("ray"))) == {"acme/scans", "acme/spaced", "acme/other"}  # words stay words
    assert set(ids(service.search("x-ra", sort="relevance"))) == {"acme/scans", "acme/joined", "acme/spaced"}


def test_counts_over_words_and_their_page_cover_what_the_viewer_may_see(service, push):
    """With words, the facet counts, the total and the page come from one statement over the matches: each
    viewer's counts are those of the models it may see, and the page is the same as without counts."""
    push("acme/a", body="zebra stripes", tags="savanna, zebra")
    push("acme/b", body="zebra herd", tags="savanna")
    push("acme/secret", body="zebra secret", tags="savanna, hidden", visibility="private")
    push("acme/c", body="giraffe", tags="savanna")
    for viewer, total, tags in ((ANONYMOUS, 2, {"savanna": 2, "zebra": 1}),
                                (Viewer(frozenset({"acme"})), 3, {"savanna": 3, "zebra": 1, "hidden": 1})):
        for sort in ("name", "relevance", "updated", "accuracy"):
            everything = service.search("zebra", viewer=viewer, sort=sort)
            for page in (1, 2, 4):
                found = service.search("zebra", facets=True, viewer=viewer, sort=sort, page=page, per_page=1)
                assert found["total"] == everything["total"] == total
                assert dict(found["facets"]["tag"]) == tags and dict(found["facets"]["documented"]) == {"yes": total}
                assert ids(found) == ids(everything)[page - 1:page]
        found = service.search("zebra", facets=True, viewer=viewer, metric=("accuracy", ">=", 0.95))
        assert found["total"] == 0 and found["facets"]["tag"] == [] and found["results"] == []


def test_the_index_follows_latest_and_rolls_back_with_a_failed_publish(service, push, database_url):
    push("acme/m", title="About zebras", tags="savanna")  # a card's title: not the model's description
    assert ids(service.search("zebras")) == ["acme/m"] and ids(service.search(tag="Savanna")) == ["acme/m"]
    push("acme/m", title="About giraffes", tags="tall")  # latest moves: the new card and tags are indexed
    assert service.search("zebras")["total"] == 0 and ids(service.search("giraffes")) == ["acme/m"]
    assert service.search(tag="savanna")["total"] == 0 and ids(service.search(tag="tall")) == ["acme/m"]
    service.set_status("acme/m@2", "yanked", "wrong")  # latest falls back to version 1
    assert ids(service.search("zebras")) == ["acme/m"] and service.search("giraffes")["total"] == 0
    with pytest.raises(NotFoundError):
        push("acme/m", title="About okapis", parent="acme/missing@1")  # fails inside the transaction
    assert service.search("okapis")["total"] == 0
    push("acme/secret", title="Private zebras", visibility="private")
    assert ids(service.search("zebras", viewer=ANONYMOUS)) == ["acme/m"]
    assert set(ids(service.search("zebras", viewer=Viewer(frozenset({"acme"}))))) == {"acme/m", "acme/secret"}


@pytest.mark.parametrize("migration", ["0003_search", "0008_model_latest", "0009_search_words"])
def test_a_registry_from_before_the_indexes_is_indexed_by_the_migration(database_url, tmp_path, push, service,
                                                                         migration):
    from alembic.script import ScriptDirectory

    push("acme/old", body="Made before search indexes.", tags="legacy")
    push("acme/gone", body="Yanked before search indexes.", tags="legacy")
    service.set_status("acme/gone@1", "yanked", "bad")  # no `latest`: not searchable, its tags not counted
    from alembic import command

    before = ScriptDirectory.from_config(alembic_config()).get_revision(migration).down_revision
    config = alembic_config(service.engine)
    with service.engine.connect() as conn:  # back to a registry made before this migration: no index tables
        if conn.dialect.name == "sqlite":  # Alembic's batch mode rebuilds tables: foreign keys off, as it advises
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.begin():
            config.attributes["connection"] = conn
            command.downgrade(config, before)
        assert migration.split("_", 1)[1] not in inspect(conn).get_table_names()
    service.engine.dispose()
    again = RegistryService(database_url, tmp_path / "blobs")
    assert ids(again.search("indexes")) == ["acme/old"] and ids(again.search(tag="legacy")) == ["acme/old"]
    found = again.search(facets=True, viewer=ANONYMOUS)
    assert found["total"] == 1 and dict(found["facets"]["tag"])["legacy"] == 1
    again.engine.dispose()


def test_counts_follow_every_write_made_through_any_process(service, push, database_url, tmp_path):
    """The totals and facet counts of a search without words are kept per value of the database's change counter:
    another service on the same database (as another process or host) sees each write at once, and never a
    private model's tags."""
    other = RegistryService(database_url, tmp_path / "blobs")

    def counts(svc, viewer=ANONYMOUS, **filters):
        found = svc.search(facets=True, viewer=viewer, **filters)
        return found["total"], dict(found["facets"]["tag"])

    assert other.metric_names() == [] and counts(other) == (0, {})
    push("acme/a", tags="savanna, zebra")
    assert counts(other) == (1, {"savanna": 1, "zebra": 1}) == counts(other)  # the second from what was kept
    assert other.metric_names() == ["accuracy"]
    push("acme/b", tags="savanna")
    assert counts(other) == (2, {"savanna": 2, "zebra": 1})
    push("acme/secret", tags="savanna, hidden", visibility="private")
    assert counts(other) == (2, {"savanna": 2, "zebra": 1})  # hidden from an anonymous viewer, tags too
    assert counts(other, Viewer(frozenset({"acme"}))) == (3, {"savanna": 3, "zebra": 1, "hidden": 1})
    assert counts(other, tag="savanna") == (2, {"savanna": 2, "zebra": 1})
    service.set_status("acme/b@1", "yanked", "wrong")  # its only version: no longer listed
    assert counts(other) == (1, {"savanna": 1, "zebra": 1})
    assert counts(other, tag="savanna") == (1, {"savanna": 1, "zebra": 1})
    with pytest.raises(NotFoundError):
        push("acme/c", tags="okapi", parent="acme/missing@1")  # rolled back: nothing to count
    assert counts(other) == (1, {"savanna": 1, "zebra": 1})
    assert other.search(viewer=ANONYMOUS)["total"] == 1  # the total alone, without facets
    other.engine.dispose()


def test_ancestors_of_a_long_chain_in_one_query(service, push):
    push("acme/chain", body="v1")
    for i in range(2, 61):
        push("acme/chain", body=f"v{i}", parent=f"acme/chain@{i - 1}")
    statements = []

    from sqlalchemy import event

    @event.listens_for(service.engine, "before_cursor_execute")
    def count(conn, cursor, statement, *args):
        statements.append(statement)

    graph = service.lineage("acme/chain@60", "ancestors")
    assert [n["depth"] for n in graph["nodes"]] == list(range(-59, 1))
    assert len(graph["edges"]) == 59
    assert sum("WITH RECURSIVE" in s for s in statements) == 1
