"""Generated inputs, thousands of them, against the parsers and the HTTP surface: none may crash
the server or answer 5xx. Hypothesis, derandomized so CI runs the same inputs every time; no
timing assertions (the budgets themselves are tested elsewhere)."""

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kargo.expressions import ExpressionError, evaluate
from kargo.specs import validate_document
from kargo.yamlio import YAMLSyntaxError, load_all
from kargo_ui.manifests import ManifestError, load, validate
from projects.tokens import do_create_token
from tests.documents import changed
from tests.http.conftest import freight, project, users  # noqa: F401 (fixtures)

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COUNTS: dict[str, int] = {}


def counted(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


# --- expressions ----------------------------------------------------------------------------

TOKENS = [
    "1",
    "2.5",
    "-3",
    "'a'",
    '"b"',
    "true",
    "false",
    "nil",
    "x",
    "ctx",
    "vars",
    "ctx.stage",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "==",
    "!=",
    "<",
    ">=",
    "and",
    "or",
    "not",
    "!",
    "in",
    "matches",
    "contains",
    "startsWith",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    "?",
    "??",
    "..",
    "#",
    "map(",
    "filter(",
    "len(",
    "upper(",
    "duration(",
    "date(",
    "now()",
    "toJSON(",
    "fromJSON(",
    "split(",
    "join(",
    "repeat(",
    "reduce(",
    "#acc",
    "let y = 1;",
    "|",
    "'(a+)+$'",
]
expressions = st.one_of(
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map(" ".join),
    st.text(max_size=60),
)


@settings(FUZZ, max_examples=2000)
@given(source=expressions)
def test_expressions_only_ever_answer_or_raise_an_expression_error(source):
    counted("expressions")
    env = {"x": [1, 2, 3], "ctx": {"stage": "test", "project": "p"}, "vars": {"a": "b"}}
    try:
        evaluate(source, env)
    except ExpressionError:
        pass


# --- manifests --------------------------------------------------------------------------------

STAGE = {
    "apiVersion": "kargo.akuity.io/v1alpha1",
    "kind": "Stage",
    "metadata": {"name": "test", "namespace": "kargo-demo"},
    "spec": {
        "requestedFreight": [
            {"origin": {"kind": "Warehouse", "name": "guestbook"}, "sources": {"direct": True}}
        ],
        "promotionTemplate": {"spec": {"steps": [{"uses": "git-clone", "config": {"a": 1}}]}},
    },
}
PATHS = [
    "kind",
    "apiVersion",
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "spec",
    "spec.requestedFreight",
    "spec.requestedFreight.0",
    "spec.requestedFreight.0.origin",
    "spec.requestedFreight.0.sources.stages",
    "spec.requestedFreight.0.sources.requiredSoakTime",
    "spec.promotionTemplate.spec.steps",
    "spec.promotionTemplate.spec.steps.0.uses",
    "spec.promotionTemplate.spec.steps.0.if",
    "spec.verification",
    "spec.shard",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(FUZZ, max_examples=800)
@given(path=st.sampled_from(PATHS), value=json_values)
def test_changed_manifests_validate_or_name_their_errors(path, value):
    counted("manifest documents")
    errors = validate_document(changed(STAGE, path, value))
    assert all(error.path is not None and error.message for error in errors)


yaml_soup = st.lists(
    st.sampled_from(
        [
            "a:",
            " b",
            "- ",
            "&x",
            "*x",
            "!tag",
            "---",
            "{",
            "}",
            "[",
            "]",
            "'",
            '"',
            "\n",
            ": ",
            "kind: Stage",
            "apiVersion: kargo.akuity.io/v1alpha1",
            "metadata:",
            "  name: x",
            "<<: *x",
            "\t",
            "#",
            "2024-07-15T22:13:57Z",
            "yes",
            "~",
            "|",
            ">",
        ]
    ),
    max_size=30,
).map("".join)


@settings(FUZZ, max_examples=700)
@given(text=st.one_of(yaml_soup, st.text(max_size=200)))
def test_any_text_loads_or_is_a_clear_yaml_error(text):
    counted("manifest texts")
    try:
        load_all(text)
    except YAMLSyntaxError as exc:
        assert str(exc)


@pytest.mark.django_db
@settings(FUZZ, max_examples=300)
@given(path=st.sampled_from(PATHS), value=json_values)
def test_apply_validation_never_crashes(path, value):
    counted("apply validations")
    text = yaml.safe_dump(changed(STAGE, path, value))
    try:
        validate(load(text, "fuzz.yaml"))
    except ManifestError as exc:
        assert exc.errors


# --- HTTP: forms and API bodies -----------------------------------------------------------

form_values = st.one_of(st.text(max_size=40), st.sampled_from(["", "test", "../x", "%00", "\x00"]))
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"[" * 5000, b'{"freight": ' * 100, b"\xff\xfe", b'{"origin": "Warehouse/"}']),
)
FORM_PATHS = [
    "/project/kargo-demo/stage/test/promote",
    "/project/kargo-demo/stage/uat/refresh",
    "/project/kargo-demo/freight/{freight}/approve",
    "/project/kargo-demo/promotion/nope/abort",
    "/project/kargo-demo/warehouse/guestbook/refresh",
    "/login/",
]


@pytest.fixture
def admin_token(project):  # noqa: F811
    return do_create_token(project, "fuzz", "admin", "test")[1]


API_PATHS = [
    "/api/v1/projects/kargo-demo/stages/test/promotions",
    "/api/v1/projects/kargo-demo/freight/{freight}/approve?stage=uat",
    "/api/v1/projects/kargo-demo/stages/uat/refresh",
    "/api/v1/projects/kargo-demo/manifests",
    "/api/v1/projects/kargo-demo/tokens",
]


@settings(FUZZ, max_examples=750)
@given(
    path=st.sampled_from(FORM_PATHS),
    data=st.dictionaries(
        st.sampled_from(["freight", "stage", "username", "password", "x"]), form_values, max_size=3
    ),
    htmx=st.booleans(),
)
def test_forms_never_answer_5xx(client, users, freight, path, data, htmx):  # noqa: F811
    counted("form posts")
    client.force_login(users["alice"])
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = client.post(path.format(freight=freight.name), data, **headers)
    assert response.status_code < 500


@settings(FUZZ, max_examples=750)
@given(
    path=st.sampled_from(API_PATHS),
    body=bodies,
    content_type=st.sampled_from(["application/json", "application/yaml", "text/plain"]),
)
def test_api_bodies_never_answer_5xx(client, admin_token, freight, path, body, content_type):  # noqa: F811
    counted("API bodies")
    response = client.generic(
        "POST",
        path.format(freight=freight.name),
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Bearer {admin_token}",
    )
    assert response.status_code < 500


def test_zz_at_least_5000_generated_inputs_ran(request):
    # Runs last in this module (name order within the file is definition order); when the whole
    # module ran, the counts add up to the figure the issue asks for.
    ran = [i for i in request.session.items if i.module is request.module]
    if len(ran) < 7:
        pytest.skip("only part of the fuzz module was selected")
    print(f"\nfuzz inputs: {COUNTS} total {sum(COUNTS.values())}")
    assert sum(COUNTS.values()) >= 5000
