"""Unit tests of kargo.specs: the project's own validation of Kargo manifests.

test_conformance.py checks agreement with Kargo's CRDs on a corpus; these tests pin paths and
messages, the CEL rules jsonschema cannot run, defaults, and the seed page's examples.
"""

import dataclasses

import pytest
from pydantic import BaseModel

from kargo import yamlio
from kargo.specs import (
    CLUSTER_SCOPED,
    KINDS,
    FieldError,
    dump,
    parse_document,
    validate_document,
)
from tests.documents import changed


def load(text: str) -> dict:
    return yamlio.load(text)


def errors_of(doc) -> list[tuple[str, str]]:
    return [(error.path, error.message) for error in validate_document(doc)]


# --------------------------------------------------------------------------------------------------
# One valid document of every kind
# --------------------------------------------------------------------------------------------------

PROJECT = load(
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata:
  name: kargo-demo
"""
)

PROJECT_CONFIG = load(
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata:
  name: kargo-demo
  namespace: kargo-demo
spec:
  promotionPolicies:
  - stageSelector:
      name: test
    autoPromotionEnabled: true
  webhookReceivers:
  - name: my-receiver
    github:
      secretRef:
        name: my-secret
"""
)

WAREHOUSE = load(
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: my-warehouse
  namespace: kargo-demo
spec:
  subscriptions:
  - image:
      repoURL: public.ecr.aws/nginx/nginx
      constraint: ^1.26.0
  - git:
      repoURL: https://github.com/example/kargo-demo.git
  - chart:
      repoURL: https://charts.example.com
      name: my-chart
"""
)

STAGE = load(
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: my-warehouse
    sources:
      direct: true
  promotionTemplate:
    spec:
      steps:
      - uses: git-clone
        config:
          repoURL: https://github.com/example/repo.git
      - task:
          name: open-pr
        as: pr
"""
)

FREIGHT = load(
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: 666209fd9755a1e48bec6b27f5f447747410dd9e
  namespace: kargo-demo
alias: wonky-wombat
origin:
  kind: Warehouse
  name: my-warehouse
commits:
- repoURL: https://github.com/example/kargo-demo.git
  id: 961cfaedbc53aacdb65110028839a2c1c281290d
images:
- repoURL: public.ecr.aws/nginx/nginx
  tag: 1.27.0
  digest: sha256:b2487a28589657b318e0d63110056e11564e73b9fd3ec4c4afba5542f9d07d46
"""
)

PROMOTION = load(
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata:
  name: test.01j2w7a15cxjjgejresfyw6ysp.666209f
  namespace: kargo-demo
spec:
  stage: test
  freight: 666209fd9755a1e48bec6b27f5f447747410dd9e
  steps:
  - uses: git-clone
    config:
      repoURL: https://github.com/example/repo.git
"""
)

PROMOTION_TASK = load(
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata:
  name: open-pr
  namespace: kargo-demo
spec:
  vars:
  - name: repoURL
  steps:
  - uses: git-open-pr
    as: open
    config:
      repoURL: ${{ vars.repoURL }}
"""
)

CLUSTER_PROMOTION_TASK = load(
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: ClusterPromotionTask
metadata:
  name: open-pr
spec:
  steps:
  - uses: git-open-pr
"""
)

ANALYSIS_TEMPLATE = load(
    """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: health
  namespace: kargo-demo
spec:
  args:
  - name: service
  metrics:
  - name: health
    interval: 30s
    count: 3
    failureLimit: 1
    successCondition: result == 'ok'
    provider:
      web:
        url: https://{{ args.service }}.example.com/health
        jsonPath: "{$.status}"
"""
)

CLUSTER_ANALYSIS_TEMPLATE = changed(ANALYSIS_TEMPLATE, "kind", "ClusterAnalysisTemplate")
del CLUSTER_ANALYSIS_TEMPLATE["metadata"]["namespace"]

ANALYSIS_RUN = load(
    """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: test.01j2w7aknhf3j7jteyqs72hnbg.101bca5
  namespace: kargo-demo
spec:
  args:
  - name: service
    value: api
  metrics:
  - name: error-rate
    provider:
      prometheus:
        address: http://prometheus:9090
        query: sum(rate(errors[5m]))
status:
  phase: Running
  startedAt: "2024-07-15T22:13:34Z"
"""
)

EVERY_KIND = {
    "Project": PROJECT,
    "ProjectConfig": PROJECT_CONFIG,
    "Warehouse": WAREHOUSE,
    "Stage": STAGE,
    "Freight": FREIGHT,
    "Promotion": PROMOTION,
    "PromotionTask": PROMOTION_TASK,
    "ClusterPromotionTask": CLUSTER_PROMOTION_TASK,
    "AnalysisTemplate": ANALYSIS_TEMPLATE,
    "ClusterAnalysisTemplate": CLUSTER_ANALYSIS_TEMPLATE,
    "AnalysisRun": ANALYSIS_RUN,
}


def test_every_kind_is_registered():
    assert set(KINDS) == set(EVERY_KIND)
    assert all(issubclass(kind.model, BaseModel) for kind in KINDS.values())
    assert CLUSTER_SCOPED == {"Project", "ClusterPromotionTask", "ClusterAnalysisTemplate"}
    assert {kind.api_version for kind in KINDS.values()} == {
        "kargo.akuity.io/v1alpha1",
        "argoproj.io/v1alpha1",
    }


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_valid_document_of_every_kind(kind):
    doc = EVERY_KIND[kind]
    assert validate_document(doc) == []
    model = parse_document(doc)
    assert isinstance(model, KINDS[kind].model)


@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_round_trip_keeps_yaml_names(kind):
    # Dumping only what was set gives back the manifest, with `if`/`as` and camelCase intact.
    doc = EVERY_KIND[kind]
    assert parse_document(doc).model_dump(exclude_unset=True) == doc


def test_field_error_is_a_frozen_dataclass():
    error = FieldError("spec.interval", "must be a duration such as 30s, 5m or 1h30m")
    assert dataclasses.is_dataclass(error)
    with pytest.raises(dataclasses.FrozenInstanceError):
        error.path = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# The seed page (docs "Working with Stages"), re-indented
# --------------------------------------------------------------------------------------------------

SEED_STAGES = [
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: my-warehouse
    sources:
      direct: true
""",
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: uat
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: my-warehouse
    sources:
      stages:
      - test
""",
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: microservice-a
    sources:
      direct: true
  - origin:
      kind: Warehouse
      name: microservice-b
    sources:
      direct: true
""",
    # The promotion template example, in a Stage. `messageFromSteps` (git-commit) and `branch`
    # (git-push) are older step config; config is opaque at this level, so they pass.
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: my-warehouse
    sources:
      direct: true
  promotionTemplate:
    spec:
      vars:
      - name: gitopsRepo
        value: https://github.com/example/repo.git
      - name: imageRepo
        value: public.ecr.aws/nginx/nginx
      - name: srcPath
        value: ./src
      - name: outPath
        value: ./out
      - name: targetBranch
        value: stage/${{ ctx.stage }}
      steps:
      - uses: git-clone
        config:
          repoURL: ${{ vars.gitopsRepo }}
          checkout:
          - branch: main
            path: ${{ vars.srcPath }}
          - branch: stage/${{ ctx.stage }}
            create: true
            path: ${{ vars.outPath }}
      - uses: git-clear
        config:
          path: ${{ vars.outPath }}
      - uses: kustomize-set-image
        as: update-image
        config:
          path: ${{ vars.srcPath }}/base
          images:
          - image: ${{ vars.imageRepo }}
      - uses: kustomize-build
        config:
          path: ${{ vars.srcPath }}/stages/${{ ctx.stage }}
          outPath: ${{ vars.outPath }}/manifests.yaml
      - uses: git-commit
        as: commit
        config:
          path: ${{ vars.outPath }}
          messageFromSteps:
          - update-image
      - uses: git-push
        config:
          path: ${{ vars.outPath }}
          branch: ${{ vars.targetBranch }}
      - uses: argocd-update
        config:
          apps:
          - name: kargo-demo-${{ ctx.stage }}
            sources:
            - repoURL: ${{ vars.gitopsRepo }}
              desiredRevision: ${{ outputs.commit.commit }}
""",
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: my-warehouse
    sources:
      direct: true
  verification:
    analysisTemplates:
    - name: kargo-demo
""",
    """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: test
  namespace: kargo-demo
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: my-warehouse
    sources:
      direct: true
  verification:
    analysisTemplates:
    - name: kargo-demo
    analysisRunMetadata:
      labels:
        foo: bar
      annotations:
        bat: baz
    args:
    - name: foo
      value: bar
""",
]

SEED_ANALYSIS_TEMPLATE = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: kargo-demo
  namespace: kargo-demo
spec:
  metrics:
  - name: test
    provider:
      job:
        metadata:
        spec:
          backoffLimit: 1
          template:
            spec:
              containers:
              - name: test
                image: alpine:latest
                command:
                - sleep
                - "10"
              restartPolicy: Never
"""

# The seed's status example documents an older Kargo (phase, health.argoCDApps and
# healthCheckCommit are gone from today's CRD); exports like it are still accepted.
SEED_STATUS = """
freightHistory:
- id: 101bca5b0e18ca7913978a1da956308d2544f741
  items:
    Warehouse/my-warehouse:
      commits:
      - healthCheckCommit: 111eaf55aa41f21bb9bb707ba1baa748b83ec51e
        id: 961cfaedbc53aacdb65110028839a2c1c281290d
        repoURL: https://github.com/example/kargo-demo.git
      images:
      - digest: sha256:b2487a28589657b318e0d63110056e11564e73b9fd3ec4c4afba5542f9d07d46
        repoURL: public.ecr.aws/nginx/nginx
        tag: 1.27.0
      name: 666209fd9755a1e48bec6b27f5f447747410dd9e
      origin:
        kind: Warehouse
        name: my-warehouse
  verificationHistory:
  - analysisRun:
      name: test.01j2w7aknhf3j7jteyqs72hnbg.101bca5
      namespace: kargo-demo
      phase: Successful
    finishTime: "2024-07-15T22:13:57Z"
    id: 5535a484-bbd0-4f12-8cf4-be2c8e0041c9
    phase: Successful
    startTime: "2024-07-15T22:13:34Z"
health:
  argoCDApps:
  - healthStatus:
      status: Healthy
    name: kargo-demo-test
    namespace: argocd
    syncStatus:
      revision: 111eaf55aa41f21bb9bb707ba1baa748b83ec51e
      status: Synced
  status: Healthy
lastPromotion:
  finishedAt: "2024-07-15T22:13:25Z"
  freight:
    commits:
    - healthCheckCommit: 111eaf55aa41f21bb9bb707ba1baa748b83ec51e
      id: 961cfaedbc53aacdb65110028839a2c1c281290d
      repoURL: https://github.com/example/kargo-demo.git
    name: 666209fd9755a1e48bec6b27f5f447747410dd9e
    origin:
      kind: Warehouse
      name: kargo-demo
  name: test.01j2w7a15cxjjgejresfyw6ysp.666209f
  status:
    finishedAt: "2024-07-15T22:13:25Z"
    freight:
      commits:
      - healthCheckCommit: 111eaf55aa41f21bb9bb707ba1baa748b83ec51e
        id: 961cfaedbc53aacdb65110028839a2c1c281290d
        repoURL: https://github.com/example/kargo-demo.git
      name: 666209fd9755a1e48bec6b27f5f447747410dd9e
      origin:
        kind: Warehouse
        name: kargo-demo
    freightCollection:
      id: 101bca5b0e18ca7913978a1da956308d2544f741
      items:
        Warehouse/kargo-demo:
          commits:
          - healthCheckCommit: 111eaf55aa41f21bb9bb707ba1baa748b83ec51e
            id: 961cfaedbc53aacdb65110028839a2c1c281290d
            repoURL: https://github.com/example/kargo-demo.git
          name: 666209fd9755a1e48bec6b27f5f447747410dd9e
          origin:
            kind: Warehouse
            name: kargo-demo
      verificationHistory:
      - analysisRun:
          name: test.01j2w7aknhf3j7jteyqs72hnbg.101bca5
          namespace: kargo-demo
          phase: ""
        id: 5535a484-bbd0-4f12-8cf4-be2c8e0041c9
        phase: Pending
        startTime: "2024-07-15T22:13:34Z"
    phase: Succeeded
observedGeneration: 1
phase: Steady
"""


@pytest.mark.parametrize("text", SEED_STAGES, ids=lambda text: str(SEED_STAGES.index(text)))
def test_seed_stage_examples_are_valid(text):
    assert errors_of(load(text)) == []


def test_seed_promotion_template_keeps_old_step_config():
    stage = parse_document(load(SEED_STAGES[3]))
    steps = stage.spec.promotionTemplate.spec.steps
    assert steps[4].config["messageFromSteps"] == ["update-image"]
    assert steps[5].config["branch"] == "${{ vars.targetBranch }}"
    assert steps[2].as_ == "update-image"


def test_seed_analysis_template_is_valid():
    doc = load(SEED_ANALYSIS_TEMPLATE)
    assert doc["spec"]["metrics"][0]["provider"]["job"]["metadata"] is None
    assert errors_of(doc) == []


def test_seed_status_export_is_accepted():
    stage = load(SEED_STAGES[0])
    stage["status"] = load(SEED_STATUS)
    assert errors_of(stage) == []
    status = parse_document(stage).status
    assert status.freightHistory[0].items["Warehouse/my-warehouse"].commits[0].id.startswith("961")
    assert status.health.status == "Healthy"


# --------------------------------------------------------------------------------------------------
# Unknown fields, required fields, enums, names
# --------------------------------------------------------------------------------------------------


def test_unknown_top_level_field():
    assert errors_of(changed(STAGE, "specs", {})) == [("specs", "unknown field")]


def test_unknown_nested_field():
    doc = changed(STAGE, "spec.requestedFreight.0.sources.drect", True)
    assert errors_of(doc) == [("spec.requestedFreight[0].sources.drect", "unknown field")]


def test_unknown_list_item_field():
    doc = changed(STAGE, "spec.promotionTemplate.spec.steps.0.with", {"a": 1})
    assert errors_of(doc) == [("spec.promotionTemplate.spec.steps[0].with", "unknown field")]


def test_unknown_field_in_subscription():
    doc = changed(WAREHOUSE, "spec.subscriptions.1.git.repoUrl", "https://x/y")
    assert errors_of(doc) == [("spec.subscriptions[1].git.repoUrl", "unknown field")]


def test_python_names_are_not_accepted_for_yaml_keywords():
    doc = changed(STAGE, "spec.promotionTemplate.spec.steps.0.if_", "true")
    assert errors_of(doc) == [("spec.promotionTemplate.spec.steps[0].if_", "unknown field")]


def test_project_has_no_spec():
    doc = changed(PROJECT, "spec", {"promotionPolicies": []})
    assert errors_of(doc) == [("spec", "unknown field")]


def test_standard_metadata_fields_are_permitted():
    doc = changed(
        STAGE,
        "metadata",
        {
            "name": "test",
            "namespace": "kargo-demo",
            "uid": "6e7d1c51-0d0b-4a1f-9f0d-8a1f3f7f7f7f",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2024-07-15T22:00:00Z",
            "managedFields": [{"manager": "kargo", "operation": "Update"}],
            "labels": {"kargo.akuity.io/shard": "east"},
            "annotations": {"kargo.akuity.io/color": "red"},
        },
    )
    assert errors_of(doc) == []


def test_unknown_metadata_field():
    assert errors_of(changed(STAGE, "metadata.colour", "red")) == [
        ("metadata.colour", "unknown field")
    ]


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (changed(STAGE, "metadata.name", delete=True), "metadata.name"),
        (changed(STAGE, "metadata", delete=True), "metadata"),
        (changed(STAGE, "spec", delete=True), "spec"),
        (changed(STAGE, "spec.requestedFreight", delete=True), "spec.requestedFreight"),
        (
            changed(STAGE, "spec.requestedFreight.0.origin", delete=True),
            "spec.requestedFreight[0].origin",
        ),
        (
            changed(STAGE, "spec.requestedFreight.0.sources", delete=True),
            "spec.requestedFreight[0].sources",
        ),
        (changed(STAGE, "spec.promotionTemplate", {}), "spec.promotionTemplate.spec"),
        (changed(WAREHOUSE, "spec.subscriptions", delete=True), "spec.subscriptions"),
        (
            changed(WAREHOUSE, "spec.subscriptions.1.git.repoURL", delete=True),
            "spec.subscriptions[1].git.repoURL",
        ),
        (changed(FREIGHT, "origin", delete=True), "origin"),
        (changed(PROMOTION, "spec.stage", delete=True), "spec.stage"),
        (changed(PROMOTION, "spec.steps", delete=True), "spec.steps"),
        (changed(PROMOTION_TASK, "spec.steps", delete=True), "spec.steps"),
        (
            changed(ANALYSIS_TEMPLATE, "spec.metrics.0.provider", delete=True),
            "spec.metrics[0].provider",
        ),
        (changed(ANALYSIS_TEMPLATE, "spec.metrics.0.name", delete=True), "spec.metrics[0].name"),
        (changed(ANALYSIS_RUN, "spec.metrics", delete=True), "spec.metrics"),
        (changed(ANALYSIS_RUN, "status.phase", delete=True), "status.phase"),
        (
            changed(PROJECT_CONFIG, "spec.webhookReceivers.0.github.secretRef", delete=True),
            "spec.webhookReceivers[0].github.secretRef",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_missing_required_field(doc, path):
    assert errors_of(doc) == [(path, "field required")]


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        (
            changed(STAGE, "spec.requestedFreight.0.origin.kind", "Stage"),
            "spec.requestedFreight[0].origin.kind",
            "must be one of Warehouse",
        ),
        (
            changed(STAGE, "spec.requestedFreight.0.sources.availabilityStrategy", "Any"),
            "spec.requestedFreight[0].sources.availabilityStrategy",
            'must be one of All, OneOf, ""',
        ),
        (
            changed(STAGE, "spec.promotionTemplate.spec.steps.1.task.kind", "Task"),
            "spec.promotionTemplate.spec.steps[1].task.kind",
            "must be one of PromotionTask, ClusterPromotionTask",
        ),
        (
            changed(WAREHOUSE, "spec.freightCreationPolicy", "Auto"),
            "spec.freightCreationPolicy",
            "must be one of Automatic, Manual",
        ),
        (
            changed(WAREHOUSE, "spec.subscriptions.0.image.imageSelectionStrategy", "Newest"),
            "spec.subscriptions[0].image.imageSelectionStrategy",
            "must be one of Digest, Lexical, NewestBuild, SemVer",
        ),
        (
            changed(
                ANALYSIS_TEMPLATE, "spec.metrics.0.provider", {"datadog": {"apiVersion": "v3"}}
            ),
            "spec.metrics[0].provider.datadog.apiVersion",
            "must be one of v1, v2",
        ),
    ],
)
def test_bad_enum(doc, path, message):
    assert errors_of(doc) == [(path, message)]


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (changed(STAGE, "metadata.name", "Test"), "metadata.name"),
        (changed(STAGE, "metadata.name", "my_stage"), "metadata.name"),
        (changed(STAGE, "metadata.name", "-test"), "metadata.name"),
        (changed(STAGE, "metadata.namespace", "kargo.demo"), "metadata.namespace"),
        (changed(PROJECT, "metadata.name", "kargo.demo"), "metadata.name"),
        (changed(PROMOTION, "spec.stage", "Test Stage"), "spec.stage"),
        (
            changed(STAGE, "spec.promotionTemplate.spec.steps.1.task.name", "Open_PR"),
            "spec.promotionTemplate.spec.steps[1].task.name",
        ),
        (changed(WAREHOUSE, "spec.subscriptions.0.name", "Images"), "spec.subscriptions[0].name"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_bad_name(doc, path):
    errors = errors_of(doc)
    assert [error_path for error_path, _ in errors] == [path]
    assert "RFC 1123" in errors[0][1]


def test_name_lengths():
    assert errors_of(changed(STAGE, "metadata.name", "a" * 253)) == []
    assert errors_of(changed(STAGE, "metadata.name", "a" * 254)) == [
        ("metadata.name", "must be at most 253 characters")
    ]
    assert errors_of(changed(PROJECT, "metadata.name", "a" * 63)) == []
    assert errors_of(changed(PROJECT, "metadata.name", "a" * 64)) == [
        ("metadata.name", "must be at most 63 characters")
    ]
    assert errors_of(changed(PROMOTION, "spec.freight", "")) == [
        ("spec.freight", "must not be empty")
    ]


def test_var_names():
    doc = changed(PROMOTION_TASK, "spec.vars.0.name", "repo-url")
    assert errors_of(doc) == [
        (
            "spec.vars[0].name",
            "must be an identifier (letters, digits, '_'; not starting with a digit)",
        )
    ]
    assert errors_of(changed(PROMOTION_TASK, "spec.vars.0.name", "_repo1")) == []


# --------------------------------------------------------------------------------------------------
# CEL rules (x-kubernetes-validations), which the jsonschema oracle cannot run
# --------------------------------------------------------------------------------------------------

STEPS = "spec.promotionTemplate.spec.steps"


def with_step(step: dict) -> dict:
    return changed(STAGE, STEPS, [step])


def test_template_step_with_uses_and_task():
    doc = with_step({"uses": "git-clone", "task": {"name": "open-pr"}})
    assert errors_of(doc) == [(f"{STEPS}[0]", "must set exactly one of uses or task")]


def test_template_step_with_neither_uses_nor_task():
    doc = with_step({"as": "nothing"})
    assert errors_of(doc) == [(f"{STEPS}[0]", "must set exactly one of uses or task")]


def test_template_task_step_cannot_set_continue_on_error_or_retry():
    doc = with_step({"task": {"name": "open-pr"}, "continueOnError": False})
    assert errors_of(doc) == [
        (f"{STEPS}[0]", "a step referencing a task cannot set continueOnError")
    ]
    doc = with_step({"task": {"name": "open-pr"}, "retry": {"errorThreshold": 2}})
    assert errors_of(doc) == [(f"{STEPS}[0]", "a step referencing a task cannot set retry")]


def test_template_task_step_may_set_as_if_and_vars():
    doc = with_step(
        {
            "task": {"name": "open-pr", "kind": "PromotionTask"},
            "as": "pr",
            "if": "${{ success() }}",
            "vars": [{"name": "repo", "value": "x"}],
        }
    )
    assert errors_of(doc) == []


def test_null_counts_as_unset_for_rules():
    # The API server prunes nulls before CEL rules run.
    doc = with_step({"task": {"name": "open-pr"}, "uses": None, "retry": None})
    assert errors_of(doc) == []


def test_promotion_step_cannot_reference_a_task():
    doc = changed(PROMOTION, "spec.steps.0", {"task": {"name": "open-pr"}})
    assert errors_of(doc) == [("spec.steps[0]", "must set uses and must not reference a task")]


def test_promotion_task_step_cannot_reference_another_task():
    doc = changed(PROMOTION_TASK, "spec.steps.0.task", {"name": "other"})
    assert errors_of(doc) == [
        ("spec.steps[0]", "must set uses and must not reference another task")
    ]
    doc = changed(CLUSTER_PROMOTION_TASK, "spec.steps.0", {"as": "x"})
    assert errors_of(doc) == [
        ("spec.steps[0]", "must set uses and must not reference another task")
    ]


def test_promotion_needs_exactly_one_of_freight_or_origin():
    both = changed(PROMOTION, "spec.origin", {"kind": "Warehouse", "name": "my-warehouse"})
    assert errors_of(both) == [("spec", "exactly one of freight or origin must be set")]
    neither = changed(PROMOTION, "spec.freight", delete=True)
    assert errors_of(neither) == [("spec", "exactly one of freight or origin must be set")]
    by_origin = changed(neither, "spec.origin", {"kind": "Warehouse", "name": "my-warehouse"})
    assert errors_of(by_origin) == []


def test_promotion_policy_needs_exactly_one_of_stage_or_selector():
    both = changed(PROJECT_CONFIG, "spec.promotionPolicies.0.stage", "test")
    assert errors_of(both) == [
        ("spec.promotionPolicies[0]", "must set exactly one of stage or stageSelector")
    ]
    neither = changed(PROJECT_CONFIG, "spec.promotionPolicies.0.stageSelector", delete=True)
    assert errors_of(neither) == [
        ("spec.promotionPolicies[0]", "must set exactly one of stage or stageSelector")
    ]


def test_auto_rollback_values():
    policy = "spec.promotionPolicies.0.autoRollback"
    ok = changed(PROJECT_CONFIG, policy, {"onPromotion": ["Errored"], "onVerification": ["Error"]})
    assert errors_of(ok) == []
    shown = "spec.promotionPolicies[0].autoRollback"
    bad = changed(PROJECT_CONFIG, policy, {"onPromotion": ["Error"]})
    assert errors_of(bad) == [(f"{shown}.onPromotion[0]", "must be one of Failed, Errored")]
    too_many = changed(PROJECT_CONFIG, policy, {"onVerification": ["Failed", "Error", "Failed"]})
    assert errors_of(too_many) == [(f"{shown}.onVerification", "must have at most 2 items")]
    repeated = changed(PROJECT_CONFIG, policy, {"onVerification": ["Error", "Error"]})
    assert errors_of(repeated) == [(f"{shown}.onVerification", "must not contain duplicate items")]


# --------------------------------------------------------------------------------------------------
# Durations, patterns, formats
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["5m", "5m0s", "1h30m", "10s", "0.5h", "1.5h30m0.5s", "300s"])
def test_valid_warehouse_interval(interval):
    assert errors_of(changed(WAREHOUSE, "spec.interval", interval)) == []


@pytest.mark.parametrize("interval", ["5", "5 m", "1d", "", "-5m", "5ms", "m5", "5m ", "PT5M"])
def test_invalid_warehouse_interval(interval):
    assert errors_of(changed(WAREHOUSE, "spec.interval", interval)) == [
        ("spec.interval", "must be a duration such as 30s, 5m or 1h30m")
    ]


def test_interval_must_be_a_string():
    assert errors_of(changed(WAREHOUSE, "spec.interval", 300)) == [
        ("spec.interval", "must be a string")
    ]


def test_required_soak_time_is_a_duration():
    path = "spec.requestedFreight.0.sources.requiredSoakTime"
    assert errors_of(changed(STAGE, path, "2h")) == []
    assert errors_of(changed(STAGE, path, "2 days")) == [
        (
            "spec.requestedFreight[0].sources.requiredSoakTime",
            "must be a duration such as 30s, 5m or 1h30m",
        )
    ]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "spec.subscriptions.0.image.repoURL",
            "nginx:1.27",
            "must be an image repository without a tag",
        ),
        ("spec.subscriptions.0.image.platform", "linux-amd64", "must be <os>/<arch>"),
        (
            "spec.subscriptions.1.git.repoURL",
            "github.com/example/repo",
            "must be an https://, ssh://, user@host:path or file:/// Git URL",
        ),
        ("spec.subscriptions.1.git.branch", "feature/", "must be a branch name"),
        (
            "spec.subscriptions.2.chart.repoURL",
            "charts.example.com",
            "must be an http(s):// or oci:// URL",
        ),
    ],
)
def test_subscription_patterns(path, value, message):
    expected_path = path.replace(".0.", "[0].").replace(".1.", "[1].").replace(".2.", "[2].")
    assert errors_of(changed(WAREHOUSE, path, value)) == [(expected_path, message)]


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/example/repo.git",
        "http://git.local:8080/repo",
        "ssh://git@github.com/example/repo.git",
        "git@github.com:example/repo.git",
    ],
)
def test_git_urls(url):
    assert errors_of(changed(WAREHOUSE, "spec.subscriptions.1.git.repoURL", url)) == []


def test_discovery_limit_bounds():
    path = "spec.subscriptions.0.image.discoveryLimit"
    assert errors_of(changed(WAREHOUSE, path, 100)) == []
    assert errors_of(changed(WAREHOUSE, path, 101)) == [
        ("spec.subscriptions[0].image.discoveryLimit", "must be at most 100")
    ]
    assert errors_of(changed(WAREHOUSE, path, 0)) == [
        ("spec.subscriptions[0].image.discoveryLimit", "must be at least 1")
    ]


def test_date_times():
    assert errors_of(changed(FREIGHT, "discoveredAt", "2024-07-15T22:10:00.5+02:00")) == []
    assert errors_of(changed(FREIGHT, "discoveredAt", "2024-07-15")) == [
        ("discoveredAt", "must be an RFC 3339 date-time, e.g. 2024-07-15T22:13:57Z")
    ]
    assert errors_of(changed(FREIGHT, "discoveredAt", "2024-13-45T25:00:00Z")) == [
        ("discoveredAt", "must be an RFC 3339 date-time, e.g. 2024-07-15T22:13:57Z")
    ]


def test_unquoted_yaml_timestamps_stay_strings_and_are_accepted():
    # As the API server reads YAML: a timestamp is the string it was written as.
    doc = load("discoveredAt: 2024-07-15T22:10:00Z\n")
    assert doc["discoveredAt"] == "2024-07-15T22:10:00Z"
    assert errors_of({**FREIGHT, **doc}) == []


# --------------------------------------------------------------------------------------------------
# Lists, types, nulls
# --------------------------------------------------------------------------------------------------


def test_min_items():
    assert errors_of(changed(STAGE, "spec.requestedFreight", [])) == [
        ("spec.requestedFreight", "must have at least 1 item")
    ]
    assert errors_of(changed(WAREHOUSE, "spec.subscriptions", [])) == [
        ("spec.subscriptions", "must have at least 1 item")
    ]
    assert errors_of(changed(STAGE, STEPS, [])) == [(STEPS, "must have at least 1 item")]


def test_types_are_strict():
    assert errors_of(changed(STAGE, "spec.requestedFreight.0.sources.direct", "true")) == [
        ("spec.requestedFreight[0].sources.direct", "must be a boolean")
    ]
    assert errors_of(changed(STAGE, "spec.requestedFreight.0.sources.direct", 1)) == [
        ("spec.requestedFreight[0].sources.direct", "must be a boolean")
    ]
    doc = changed(ANALYSIS_RUN, "status.metricResults", [{"name": "m", "phase": "", "count": "1"}])
    assert errors_of(doc) == [("status.metricResults[0].count", "must be an integer")]
    assert errors_of(changed(STAGE, "spec.requestedFreight", {"origin": {}})) == [
        ("spec.requestedFreight", "must be a list")
    ]
    assert errors_of(changed(STAGE, "spec.requestedFreight.0.origin", "my-warehouse")) == [
        ("spec.requestedFreight[0].origin", "must be an object")
    ]


def test_int_or_string_fields():
    metric = "spec.metrics.0"
    assert errors_of(changed(ANALYSIS_TEMPLATE, f"{metric}.count", "{{ args.count }}")) == []
    assert errors_of(changed(ANALYSIS_TEMPLATE, f"{metric}.failureLimit", -1)) == []
    assert errors_of(changed(ANALYSIS_TEMPLATE, f"{metric}.count", True)) == [
        ("spec.metrics[0].count", "must be an integer or a string")
    ]


def test_nulls_are_unset():
    assert errors_of(changed(WAREHOUSE, "spec.shard", None)) == []
    # A required field that is null is missing.
    assert errors_of(changed(STAGE, "spec.requestedFreight.0.sources", None)) == [
        ("spec.requestedFreight[0].sources", "field required")
    ]


def test_null_map_values_are_dropped():
    # As the API server prunes them: `team: null` is no label, and a map left empty is fine.
    doc = load(
        """
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata:
  name: kargo-demo
  labels:
    team: null
    tier: web
  annotations:
    reviewed-by: ~
"""
    )
    assert errors_of(doc) == []
    assert dump(parse_document(doc))["metadata"] == {
        "name": "kargo-demo",
        "labels": {"tier": "web"},
        "annotations": {},
    }


def value_at(doc: dict, path: str):
    for part in path.split("."):
        doc = doc[int(part) if part.isdigit() else part]
    return doc


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (PROJECT_CONFIG, "spec.promotionPolicies.0.stageSelector.matchLabels"),
        (
            changed(STAGE, "spec.verification", {"analysisRunMetadata": {}}),
            "spec.verification.analysisRunMetadata.labels",
        ),
        (FREIGHT, "images.0.annotations"),
        (ANALYSIS_TEMPLATE, "metadata.annotations"),
    ],
)
def test_null_values_are_dropped_from_every_string_map(doc, path):
    doc = changed(doc, path, {"kept": "x", "dropped": None})
    assert errors_of(doc) == []
    assert value_at(dump(parse_document(doc)), path) == {"kept": "x"}


def test_null_values_are_dropped_from_status_maps():
    doc = changed(FREIGHT, "status", {"approvedFor": {"test": None, "uat": {}}})
    assert errors_of(doc) == []
    assert dump(parse_document(doc))["status"] == {"approvedFor": {"uat": {}}}


def test_non_null_map_values_are_still_checked():
    assert errors_of(changed(PROJECT, "metadata.labels", {"team": 5, "tier": None})) == [
        ("metadata.labels.team", "must be a string")
    ]
    assert errors_of(changed(PROJECT, "metadata.labels", ["team"])) == [
        ("metadata.labels", "must be an object")
    ]


# --------------------------------------------------------------------------------------------------
# Step config, subscriptions, defaults, status
# --------------------------------------------------------------------------------------------------


def test_step_config_is_an_opaque_object():
    config = {"anything": {"goes": ["${{ outputs.x }}", 1, None]}, "messageFromSteps": ["a"]}
    assert errors_of(with_step({"uses": "whatever-step", "config": config})) == []
    assert errors_of(with_step({"uses": "git-clone", "config": "repoURL: x"})) == [
        (f"{STEPS}[0].config", "must be an object")
    ]


def test_subscription_needs_exactly_one_type():
    message = "must have exactly one subscription type (git, image, chart or other)"
    two = changed(WAREHOUSE, "spec.subscriptions.0.git", {"repoURL": "https://github.com/a/b"})
    assert errors_of(two) == [("spec.subscriptions[0]", message)]
    assert errors_of(changed(WAREHOUSE, "spec.subscriptions.0", {})) == [
        ("spec.subscriptions[0]", message)
    ]
    name_only = changed(WAREHOUSE, "spec.subscriptions.0", {"name": "images"})
    assert errors_of(name_only) == [("spec.subscriptions[0]", message)]


def test_named_and_generic_subscriptions():
    doc = changed(
        WAREHOUSE,
        "spec.subscriptions",
        [
            {"name": "frontend", "image": {"repoURL": "ghcr.io/example/frontend"}},
            {"name": "bucket", "s3": {"config": {"bucket": "artifacts"}, "discoveryLimit": 5}},
        ],
    )
    assert errors_of(doc) == []
    generic = parse_document(doc).spec.subscriptions[1].model_extra["s3"]
    assert generic.config == {"bucket": "artifacts"}
    bad = changed(doc, "spec.subscriptions.1.s3.config", ["bucket"])
    assert errors_of(bad) == [("spec.subscriptions[1].s3.config", "must be an object")]
    unknown = changed(doc, "spec.subscriptions.1.s3.bucket", "artifacts")
    assert errors_of(unknown) == [("spec.subscriptions[1].s3.bucket", "unknown field")]


def test_warehouse_defaults():
    spec = parse_document(WAREHOUSE).spec
    assert spec.interval == "5m0s"
    assert spec.freightCreationPolicy == "Automatic"
    image, git, chart = (
        spec.subscriptions[0].image,
        spec.subscriptions[1].git,
        spec.subscriptions[2].chart,
    )
    assert (image.imageSelectionStrategy, image.strictSemvers, image.discoveryLimit) == (
        "SemVer",
        True,
        20,
    )
    assert image.cacheByTag is False
    assert (git.commitSelectionStrategy, git.strictSemvers, git.discoveryLimit) == (
        "NewestFromBranch",
        True,
        20,
    )
    assert chart.discoveryLimit == 20


def test_analysis_defaults():
    doc = changed(ANALYSIS_TEMPLATE, "spec.metrics.0.provider", {"datadog": {"query": "q"}})
    datadog = parse_document(doc).spec.metrics[0].provider.datadog
    assert (datadog.apiVersion, datadog.interval, datadog.requestTimeout) == ("v1", "5m", "10s")


def test_status_ignores_unknown_fields_but_checks_known_ones():
    doc = changed(STAGE, "status", {"phase": "Steady", "observedGeneration": 2})
    assert errors_of(doc) == []
    doc = changed(STAGE, "status", {"observedGeneration": "2"})
    assert errors_of(doc) == [("status.observedGeneration", "must be an integer")]
    condition = {"type": "Ready", "status": "Yes", "reason": "Synced", "message": ""}
    doc = changed(PROJECT, "status", {"conditions": [condition]})
    assert errors_of(doc) == [
        ("status.conditions[0].lastTransitionTime", "field required"),
        ("status.conditions[0].status", "must be one of True, False, Unknown"),
    ]


def test_job_provider_checks_container_fields():
    doc = load(SEED_ANALYSIS_TEMPLATE)
    containers = "spec.metrics.0.provider.job.spec.template.spec.containers"
    typo = changed(doc, f"{containers}.0.imagee", "alpine")
    assert errors_of(typo) == [
        ("spec.metrics[0].provider.job.spec.template.spec.containers[0].imagee", "unknown field")
    ]
    no_name = changed(doc, f"{containers}.0.name", delete=True)
    assert errors_of(no_name) == [
        ("spec.metrics[0].provider.job.spec.template.spec.containers[0].name", "field required")
    ]


# --------------------------------------------------------------------------------------------------
# apiVersion, kind, non-documents, parse_document
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [None, [], "kind: Stage", 42])
def test_non_mapping_documents(doc):
    errors = validate_document(doc)
    assert [error.path for error in errors] == ["apiVersion"]


def test_missing_api_version_and_kind():
    assert errors_of({"metadata": {"name": "x"}}) == [
        ("apiVersion", "field required"),
        ("kind", "field required"),
    ]


def test_unknown_api_version():
    doc = changed(STAGE, "apiVersion", "kargo.akuity.io/v1")
    assert errors_of(doc) == [
        ("apiVersion", "must be one of argoproj.io/v1alpha1, kargo.akuity.io/v1alpha1")
    ]


def test_unknown_kind():
    errors = errors_of(changed(STAGE, "kind", "Environment"))
    assert [path for path, _ in errors] == ["kind"]
    assert "Stage" in errors[0][1] and "kargo.akuity.io/v1alpha1" in errors[0][1]


def test_kind_under_the_wrong_api_version():
    errors = errors_of(changed(ANALYSIS_TEMPLATE, "apiVersion", "kargo.akuity.io/v1alpha1"))
    assert [path for path, _ in errors] == ["kind"]


def test_parse_document_raises_value_error_with_field_errors():
    doc = changed(STAGE, "spec.requestedFreight.0.origin.kind", "Stage")
    with pytest.raises(ValueError) as raised:
        parse_document(doc)
    assert raised.value.errors == [
        FieldError("spec.requestedFreight[0].origin.kind", "must be one of Warehouse")
    ]
    assert "spec.requestedFreight[0].origin.kind: must be one of Warehouse" in str(raised.value)


def test_parse_document_returns_typed_models():
    stage = parse_document(STAGE)
    assert stage.metadata.name == "test"
    assert stage.spec.requestedFreight[0].origin.name == "my-warehouse"
    assert stage.spec.promotionTemplate.spec.steps[1].task.name == "open-pr"
    freight = parse_document(FREIGHT)
    assert freight.images[0].tag == "1.27.0"


def test_local_file_git_urls_are_accepted_as_our_extension():
    # Kargo's CRD refuses file:// URLs; a single-machine setup needs local repositories.
    assert (
        errors_of(changed(WAREHOUSE, "spec.subscriptions.1.git.repoURL", "file:///srv/git/app.git"))
        == []
    )
    assert (
        errors_of(changed(WAREHOUSE, "spec.subscriptions.1.git.repoURL", "file://relative")) != []
    )


def test_patterns_mean_what_go_means_by_them():
    # Python's `$` also matches before a final newline; the API server's Go regexp does not.
    assert errors_of(changed(WAREHOUSE, "spec.subscriptions.1.git.branch", "main")) == []
    assert [
        e[0] for e in errors_of(changed(WAREHOUSE, "spec.subscriptions.1.git.branch", "main\n"))
    ] == ["spec.subscriptions[1].git.branch"]
