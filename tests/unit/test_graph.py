"""Server-side pipeline layout."""

from types import SimpleNamespace

from stages.graph import NODE_W, layout, pipeline_order
from stages.queries import StageView


def stage(name, upstream=(), direct=()):
    spec = {
        "requestedFreight": [
            {
                "origin": {"kind": "Warehouse", "name": "w"},
                "sources": {"direct": bool(direct), "stages": list(upstream)},
            }
        ]
    }
    obj = SimpleNamespace(name=name, spec=spec, upstream_names=list(upstream))
    return StageView(
        stage=obj,
        phase="Ready",
        current=[],
        active=None,
        pending=0,
        upstream=list(upstream),
        warehouses=list(direct),
    )


def positions(result):
    return {n.name: (n.x, n.y) for n in result.nodes}


def test_ranks_follow_the_longest_upstream_chain():
    views = [
        stage("test", direct=["w"]),
        stage("uat", ["test"]),
        stage("prod", ["uat"]),
        stage("hotfix", direct=["w"]),
    ]
    result = layout([SimpleNamespace(name="w")], views)
    x = {name: pos[0] for name, pos in positions(result).items()}
    assert x["w"] < x["test"] < x["uat"] < x["prod"]
    assert x["hotfix"] == x["test"]
    assert len(result.edges) == 4
    assert result.width >= x["prod"] + NODE_W


def test_ordering_avoids_crossings_in_parallel_lanes():
    # Two lanes whose names would interleave alphabetically: a1 -> b1 and a2 -> b2 must not cross.
    views = [
        stage("a1", direct=["w"]),
        stage("a2", direct=["w"]),
        stage("z-from-a1", ["a1"]),
        stage("b-from-a2", ["a2"]),
    ]
    pos = positions(layout([SimpleNamespace(name="w")], views))
    assert (pos["a1"][1] < pos["a2"][1]) == (pos["z-from-a1"][1] < pos["b-from-a2"][1])


def test_a_cycle_in_stored_data_does_not_hang_the_layout():
    views = [stage("a", ["b"]), stage("b", ["a"])]
    result = layout([], views)
    assert {n.name for n in result.nodes} == {"a", "b"}


def test_hundreds_of_stages_lay_out_without_overlap():
    views = [
        stage(f"s{i}", direct=["w"]) if i < 10 else stage(f"s{i}", [f"s{i - 10}"])
        for i in range(300)
    ]
    result = layout([SimpleNamespace(name="w")], views)
    assert len({(n.x, n.y) for n in result.nodes}) == 301


def test_pipeline_order_lists_stages_left_to_right():
    views = [stage("prod", ["uat"]), stage("uat", ["test"]), stage("test", direct=["w"])]
    assert [s.name for s in pipeline_order([v.stage for v in views])] == ["test", "uat", "prod"]


def test_ranks_of_a_very_deep_pipeline_need_no_recursion():
    from stages.graph import longest_path_ranks

    chain = {f"s{i}": ([f"s{i - 1}"] if i else []) for i in range(5000)}
    assert longest_path_ranks(chain)["s4999"] == 4999
