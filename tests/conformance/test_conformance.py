"""Conformance of kargo.specs with Kargo's and Argo Rollouts' own schemas (the oracle).

The oracle is each CRD's ``openAPIV3Schema`` from ../shared/kargo-schemas, run with jsonschema
after a conversion that mirrors what the Kubernetes API server does with it:

- objects that declare ``properties`` are closed (``additionalProperties: false``): in strict
  field validation the API server rejects unknown fields, and that is what we mirror;
  ``x-kubernetes-preserve-unknown-fields`` objects and objects without properties stay open;
- ``null`` values are pruned from documents, and required fields with a ``default`` are not
  required, since the API server drops nulls and applies defaults before validating;
- ``x-kubernetes-list-type: set`` becomes ``uniqueItems``; other ``x-kubernetes-*`` extensions are
  ignored, and CEL rules (``x-kubernetes-validations``) cannot run here at all, so cases that
  depend on them are tested only against our validator, in test_schemas.py;
- ``metadata`` is ``type: object`` in every CRD because the API server validates ObjectMeta
  itself; the oracle substitutes that validation (name required, RFC 1123 names);
- ``status`` subtrees are left open, because Kargo exports (including older ones carrying removed
  status fields) must be accepted; their declared fields are still type-checked;
- Warehouse ``spec.subscriptions`` items are ``x-kubernetes-preserve-unknown-fields`` in the CRD
  and decoded by Kargo's code; the oracle checks them with Kargo's subscription JSON schemas
  (subscriptions/*.json) plus the item shape Kargo's decoder accepts.

Every corpus document is its own test: ``validate_document(doc) == []`` must hold exactly when
the oracle accepts the document (and the corpus says which one that is).
"""

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from kargo.specs import validate_document
from tests.documents import changed

from .step_schemas import SCHEMAS_DIR, needs_schemas

pytestmark = needs_schemas

KARGO = "kargo.akuity.io/v1alpha1"
ROLLOUTS = "argoproj.io/v1alpha1"


# --------------------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------------------

# Kubernetes' own ObjectMeta name rules (k8s.io/apimachinery validation), which the API server
# applies to every object before the CRD schema sees it.
SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SERVER_SET_METADATA = [
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
    "ownerReferences",
    "managedFields",
    "selfLink",
]


def object_meta_schema(kind: str) -> dict:
    # A Project becomes a namespace of the same name, so its name must also be a DNS label.
    if kind == "Project":
        name = {"type": "string", "minLength": 1, "maxLength": 63, "pattern": LABEL}
    else:
        name = {"type": "string", "minLength": 1, "maxLength": 253, "pattern": SUBDOMAIN}
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": name,
            "namespace": {"type": "string", "maxLength": 63, "pattern": LABEL},
            "labels": string_map,
            "annotations": string_map,
            **{field: {} for field in SERVER_SET_METADATA},
        },
        "additionalProperties": False,
    }


def to_json_schema(node, open_objects: bool = False):
    """Convert one OpenAPI v3 (CRD) schema node to JSON Schema, as described in the docstring."""
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("description", "$schema", "title"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub, open_objects) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value, open_objects)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(sub, open_objects) for sub in value]
        else:
            out[key] = value
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node:
        if not preserve and not open_objects:
            out["additionalProperties"] = False
    if "required" in out:
        defaulted = {name for name, sub in node.get("properties", {}).items() if "default" in sub}
        out["required"] = [name for name in out["required"] if name not in defaulted]
    return out


def subscription_item_schema(schemas_dir: Path) -> dict:
    """One Warehouse spec.subscriptions[] item: optional `name` + exactly one type key."""

    def load(name: str) -> dict:
        return to_json_schema(json.loads((schemas_dir / "subscriptions" / name).read_text()))

    # Kargo's generic Subscription type (api/v1alpha1/warehouse_types.go) has no JSON schema file.
    generic = {
        "type": "object",
        "properties": {
            "subscriptionType": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1},
            "config": {"type": "object"},
            "discoveryLimit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
        },
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 63, "pattern": LABEL},
            "git": load("git.json"),
            "image": load("image.json"),
            "chart": load("chart.json"),
        },
        "additionalProperties": generic,
        "if": {"required": ["name"]},
        "then": {"minProperties": 2, "maxProperties": 2},
        "else": {"minProperties": 1, "maxProperties": 1},
    }


def load_crd_schemas(schemas_dir: Path) -> dict[tuple[str, str], dict]:
    schemas = {}
    files = sorted((schemas_dir / "crds").glob("*.yaml"))
    files += sorted((schemas_dir / "argo-rollouts-crds").glob("*.yaml"))
    for path in files:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                api_version = f"{crd['spec']['group']}/{version['name']}"
                root = version["schema"]["openAPIV3Schema"]
                properties = {
                    name: to_json_schema(sub, open_objects=name == "status")
                    for name, sub in root["properties"].items()
                }
                properties["apiVersion"] = {"const": api_version}
                properties["kind"] = {"const": kind}
                properties["metadata"] = object_meta_schema(kind)
                schema = {
                    "type": "object",
                    "properties": properties,
                    "required": sorted(
                        {"apiVersion", "kind", "metadata", *root.get("required", [])}
                    ),
                    "additionalProperties": False,
                }
                if kind == "Warehouse":
                    subscriptions = schema["properties"]["spec"]["properties"]["subscriptions"]
                    subscriptions["items"] = subscription_item_schema(schemas_dir)
                schemas[(api_version, kind)] = schema
    return schemas


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    return True


def prune_nulls(value):
    if isinstance(value, dict):
        return {key: prune_nulls(sub) for key, sub in value.items() if sub is not None}
    if isinstance(value, list):
        return [prune_nulls(sub) for sub in value]
    return value


@pytest.fixture(scope="module")
def oracle():
    schemas = load_crd_schemas(SCHEMAS_DIR)
    validators = {}
    for key, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        validators[key] = Draft202012Validator(schema, format_checker=FORMATS)

    def accepts(doc: dict) -> tuple[bool, list[str]]:
        validator = validators[(doc["apiVersion"], doc["kind"])]
        errors = list(validator.iter_errors(prune_nulls(doc)))
        return not errors, [f"{list(error.absolute_path)}: {error.message}" for error in errors]

    return accepts


# --------------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------------


def doc(api_version: str, kind: str, name: str, namespace: str | None = "kargo-demo", **fields):
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}


PROJECT = doc(KARGO, "Project", "kargo-demo", namespace=None)
PROJECT_WITH_STATUS = doc(
    KARGO,
    "Project",
    "kargo-demo",
    namespace=None,
    status={
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Synced",
                "message": "",
                "lastTransitionTime": "2024-07-15T22:13:57Z",
                "observedGeneration": 1,
            }
        ],
        "stats": {
            "stages": {"count": 3, "health": {"healthy": 3}},
            "warehouses": {"count": 1, "health": {"healthy": 1}},
        },
    },
)
PROJECT_CONFIG = doc(
    KARGO,
    "ProjectConfig",
    "kargo-demo",
    spec={
        "promotionPolicies": [
            {"stageSelector": {"name": "glob:test*"}, "autoPromotionEnabled": True},
            {"stage": "uat", "autoRollback": {"onPromotion": ["Failed", "Errored"]}},
        ],
        "webhookReceivers": [
            {"name": "my-receiver", "github": {"secretRef": {"name": "my-secret"}}},
            {
                "name": "generic",
                "generic": {
                    "secretRef": {"name": "generic-secret"},
                    "actions": [
                        {
                            "action": "Refresh",
                            "whenExpression": "request.body.ref == 'refs/heads/main'",
                            "targetSelectionCriteria": [
                                {
                                    "kind": "Warehouse",
                                    "indexSelector": {
                                        "matchIndices": [
                                            {
                                                "key": "subscribedURLs",
                                                "operator": "Equals",
                                                "value": "${{ request.body.repository }}",
                                            }
                                        ]
                                    },
                                }
                            ],
                        }
                    ],
                },
            },
        ],
        "freightLinks": [{"title": "Commit", "url": "https://example.com/{{ .freight.name }}"}],
        "promotionWindows": [
            {"name": "weekdays", "kind": "Allow", "rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"}
        ],
    },
)
WAREHOUSE = doc(
    KARGO,
    "Warehouse",
    "my-warehouse",
    spec={
        "subscriptions": [
            {"image": {"repoURL": "public.ecr.aws/nginx/nginx", "constraint": "^1.26.0"}},
            {"git": {"repoURL": "https://github.com/example/kargo-demo.git"}},
        ]
    },
)
WAREHOUSE_FULL = doc(
    KARGO,
    "Warehouse",
    "full",
    spec={
        "shard": "east",
        "interval": "1h30m",
        "freightCreationPolicy": "Manual",
        "freightCreationCriteria": {"expression": "imageFrom('nginx').Tag != ''"},
        "subscriptions": [
            {
                "name": "app-config",
                "git": {
                    "repoURL": "git@github.com:example/kargo-demo.git",
                    "commitSelectionStrategy": "SemVer",
                    "semverConstraint": ">=1.0.0",
                    "strictSemvers": False,
                    "allowTagsRegexes": ["^v"],
                    "includePaths": ["glob:charts/*"],
                    "excludePaths": ["regex:.*\\.md$"],
                    "discoveryLimit": 100,
                    "blobless": True,
                },
            },
            {
                "image": {
                    "repoURL": "ghcr.io/example/app",
                    "imageSelectionStrategy": "Digest",
                    "constraint": "latest",
                    "platform": "linux/amd64",
                    "cacheByTag": True,
                }
            },
            {"chart": {"repoURL": "https://charts.example.com", "name": "app"}},
            {"chart": {"repoURL": "oci://ghcr.io/example/charts/app", "semverConstraint": "^2"}},
        ],
    },
)
WAREHOUSE_GIT_BRANCH = doc(
    KARGO,
    "Warehouse",
    "branch",
    spec={
        "interval": "30s",
        "subscriptions": [
            {
                "git": {
                    "repoURL": "https://github.com/example/repo.git",
                    "branch": "release/1.x",
                    "since": "2024-07-15T22:13:57Z",
                    "expressionFilter": "!(subject contains 'skip ci')",
                }
            }
        ],
    },
)
WAREHOUSE_GENERIC = doc(
    KARGO,
    "Warehouse",
    "generic",
    spec={
        "subscriptions": [
            {"name": "my-artifact", "s3": {"config": {"bucket": "b"}, "discoveryLimit": 5}}
        ]
    },
)
WAREHOUSE_WITH_STATUS = changed(
    WAREHOUSE,
    "status",
    {
        "lastFreightID": "666209fd9755a1e48bec6b27f5f447747410dd9e",
        "observedGeneration": 2,
        "discoveredArtifacts": {
            "discoveredAt": "2024-07-15T22:13:57Z",
            "images": [
                {
                    "repoURL": "public.ecr.aws/nginx/nginx",
                    "references": [
                        {
                            "tag": "1.27.0",
                            "digest": "sha256:b2487a28589657b318e0d63110056e11564e73b9",
                            "createdAt": "2024-07-01T10:00:00Z",
                        }
                    ],
                }
            ],
            "git": [
                {
                    "repoURL": "https://github.com/example/kargo-demo.git",
                    "commits": [{"id": "961cfaedbc53aacdb65110028839a2c1c281290d"}],
                    "observedRefs": {"branchHead": "961cfaedbc53aacdb65110028839a2c1c281290d"},
                }
            ],
        },
    },
)
STAGE_TEST = doc(
    KARGO,
    "Stage",
    "test",
    spec={
        "requestedFreight": [
            {"origin": {"kind": "Warehouse", "name": "my-warehouse"}, "sources": {"direct": True}}
        ]
    },
)
STAGE_UAT = doc(
    KARGO,
    "Stage",
    "uat",
    spec={
        "requestedFreight": [
            {
                "origin": {"kind": "Warehouse", "name": "my-warehouse"},
                "sources": {
                    "stages": ["test", "qa"],
                    "requiredSoakTime": "1h",
                    "availabilityStrategy": "All",
                    "autoPromotionOptions": {"selectionPolicy": "NewestFreight"},
                },
            }
        ]
    },
)
STAGE_TEMPLATE = doc(
    KARGO,
    "Stage",
    "test",
    spec={
        "shard": "east",
        "vars": [{"name": "gitopsRepo", "value": "https://github.com/example/repo.git"}],
        "requestedFreight": STAGE_TEST["spec"]["requestedFreight"],
        "promotionTemplate": {
            "spec": {
                "vars": [
                    {"name": "srcPath", "value": "./src"},
                    {"name": "outPath", "value": "./out"},
                    {"name": "targetBranch", "value": "stage/${{ ctx.stage }}"},
                ],
                "steps": [
                    {
                        "uses": "git-clone",
                        "config": {
                            "repoURL": "${{ vars.gitopsRepo }}",
                            "checkout": [
                                {"branch": "main", "path": "${{ vars.srcPath }}"},
                                {"branch": "stage/${{ ctx.stage }}", "create": True, "path": "out"},
                            ],
                        },
                    },
                    {"uses": "git-clear", "config": {"path": "${{ vars.outPath }}"}},
                    {
                        "uses": "kustomize-set-image",
                        "as": "update-image",
                        "config": {"path": "./src/base", "images": [{"image": "nginx"}]},
                    },
                    {
                        "uses": "git-commit",
                        "as": "commit",
                        "config": {"path": "./out", "messageFromSteps": ["update-image"]},
                    },
                    {
                        "uses": "git-push",
                        "config": {"path": "./out", "branch": "${{ vars.targetBranch }}"},
                    },
                    {
                        "uses": "argocd-update",
                        "if": "${{ success() }}",
                        "continueOnError": False,
                        "retry": {"errorThreshold": 3, "timeout": "10m"},
                        "vars": [{"name": "app", "value": "kargo-demo-${{ ctx.stage }}"}],
                        "config": {"apps": [{"name": "${{ vars.app }}"}]},
                    },
                ],
            }
        },
    },
)
STAGE_TASK_STEP = changed(
    STAGE_TEST,
    "spec.promotionTemplate",
    {
        "spec": {
            "steps": [
                {
                    "task": {"name": "open-pr", "kind": "ClusterPromotionTask"},
                    "as": "pr",
                    "vars": [{"name": "repo", "value": "https://github.com/example/repo.git"}],
                },
                {"uses": "argocd-update", "config": {"apps": [{"name": "demo"}]}},
            ]
        }
    },
)
STAGE_VERIFICATION = changed(
    STAGE_TEST,
    "spec.verification",
    {
        "analysisTemplates": [
            {"name": "kargo-demo"},
            {"name": "smoke", "kind": "ClusterAnalysisTemplate"},
        ],
        "analysisRunMetadata": {"labels": {"foo": "bar"}, "annotations": {"bat": "baz"}},
        "args": [{"name": "foo", "value": "bar"}],
    },
)
FREIGHT_REFERENCE = {
    "name": "666209fd9755a1e48bec6b27f5f447747410dd9e",
    "origin": {"kind": "Warehouse", "name": "my-warehouse"},
    "commits": [
        {
            "id": "961cfaedbc53aacdb65110028839a2c1c281290d",
            "repoURL": "https://github.com/example/kargo-demo.git",
        }
    ],
    "images": [
        {
            "repoURL": "public.ecr.aws/nginx/nginx",
            "tag": "1.27.0",
            "digest": "sha256:b2487a28589657b318e0d63110056e11564e73b9fd3ec4c4afba5542f9d07d46",
        }
    ],
}
PROMOTION_STATUS = {
    "phase": "Succeeded",
    "startedAt": "2024-07-15T22:13:20Z",
    "finishedAt": "2024-07-15T22:13:25Z",
    "currentStep": 2,
    "freight": FREIGHT_REFERENCE,
    "freightCollection": {
        "id": "101bca5b0e18ca7913978a1da956308d2544f741",
        "items": {"Warehouse/my-warehouse": FREIGHT_REFERENCE},
    },
    "healthChecks": [{"uses": "argocd-update", "config": {"apps": [{"name": "demo"}]}}],
    "stepExecutionMetadata": [
        {
            "alias": "step-1",
            "status": "Succeeded",
            "errorCount": 0,
            "startedAt": "2024-07-15T22:13:20Z",
        }
    ],
    "state": {"commit": {"commit": "abc123"}},
}
STAGE_STATUS = changed(
    STAGE_TEST,
    "status",
    {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Verified",
                "message": "Stage is ready",
                "lastTransitionTime": "2024-07-15T22:13:57Z",
            }
        ],
        "freightHistory": [
            {
                "id": "101bca5b0e18ca7913978a1da956308d2544f741",
                "items": {"Warehouse/my-warehouse": FREIGHT_REFERENCE},
                "verificationHistory": [
                    {
                        "id": "5535a484-bbd0-4f12-8cf4-be2c8e0041c9",
                        "phase": "Successful",
                        "startTime": "2024-07-15T22:13:34Z",
                        "finishTime": "2024-07-15T22:13:57Z",
                        "analysisRun": {
                            "name": "test.01j2w7aknhf3j7jteyqs72hnbg.101bca5",
                            "namespace": "kargo-demo",
                            "phase": "Successful",
                        },
                    }
                ],
            }
        ],
        "health": {"status": "Healthy", "output": {"argocdApps": []}},
        "lastPromotion": {
            "name": "test.01j2w7a15cxjjgejresfyw6ysp.666209f",
            "finishedAt": "2024-07-15T22:13:25Z",
            "freight": FREIGHT_REFERENCE,
            "status": PROMOTION_STATUS,
        },
        "autoPromotionHolds": {
            "Warehouse/my-warehouse": {
                "freightName": "666209fd9755a1e48bec6b27f5f447747410dd9e",
                "origin": {"kind": "Warehouse", "name": "my-warehouse"},
                "actor": "admin",
            }
        },
        "freightSummary": "1/1 Fulfilled",
        "observedGeneration": 1,
        "metadata": {"stableFreight": "666209f"},
    },
)
# The status example of the seed page (docs for an older Kargo: phase, health.argoCDApps and
# healthCheckCommit have since been removed). Exports like it must still be accepted.
STAGE_OLD_STATUS = changed(
    STAGE_TEST,
    "status",
    {
        "phase": "Steady",
        "observedGeneration": 1,
        "health": {
            "status": "Healthy",
            "argoCDApps": [{"name": "kargo-demo-test", "namespace": "argocd"}],
        },
        "lastPromotion": {
            "name": "test.01j2w7a15cxjjgejresfyw6ysp.666209f",
            "finishedAt": "2024-07-15T22:13:25Z",
            "freight": {
                "name": "666209fd9755a1e48bec6b27f5f447747410dd9e",
                "origin": {"kind": "Warehouse", "name": "kargo-demo"},
                "commits": [
                    {
                        "healthCheckCommit": "111eaf55aa41f21bb9bb707ba1baa748b83ec51e",
                        "id": "961cfaedbc53aacdb65110028839a2c1c281290d",
                        "repoURL": "https://github.com/example/kargo-demo.git",
                    }
                ],
            },
        },
    },
)
FREIGHT = doc(
    KARGO,
    "Freight",
    "666209fd9755a1e48bec6b27f5f447747410dd9e",
    alias="wonky-wombat",
    origin={"kind": "Warehouse", "name": "my-warehouse"},
    discoveredAt="2024-07-15T22:10:00Z",
    commits=FREIGHT_REFERENCE["commits"],
    images=FREIGHT_REFERENCE["images"],
    charts=[{"repoURL": "oci://ghcr.io/example/charts/app", "version": "1.2.3"}],
    artifacts=[
        {
            "artifactType": "application/vnd.example",
            "subscriptionName": "my-artifact",
            "version": "v1",
            "metadata": {"size": 3},
        }
    ],
    status={
        "currentlyIn": {"test": {"since": "2024-07-15T22:13:25Z"}},
        "verifiedIn": {"test": {"verifiedAt": "2024-07-15T22:13:57Z", "longestSoak": "1h0m0s"}},
        "approvedFor": {"prod": {"approvedAt": "2024-07-16T09:00:00Z"}},
        "metadata": {"ticket": {"id": 42}},
    },
)
FREIGHT_MINIMAL = doc(
    KARGO, "Freight", "abc123", origin={"kind": "Warehouse", "name": "my-warehouse"}
)
PROMOTION = doc(
    KARGO,
    "Promotion",
    "test.01j2w7a15cxjjgejresfyw6ysp.666209f",
    spec={
        "stage": "test",
        "freight": "666209fd9755a1e48bec6b27f5f447747410dd9e",
        "vars": [{"name": "srcPath", "value": "./src"}],
        "steps": [
            {"uses": "git-clone", "as": "task-1::clone", "config": {"repoURL": "https://x/y"}},
            {"uses": "argocd-update", "retry": {"timeout": "5m"}},
        ],
    },
    status=PROMOTION_STATUS,
)
PROMOTION_BY_ORIGIN = doc(
    KARGO,
    "Promotion",
    "test-by-origin",
    spec={
        "stage": "test",
        "origin": {"kind": "Warehouse", "name": "my-warehouse"},
        "steps": [{"uses": "fail"}],
    },
)
PROMOTION_TASK = doc(
    KARGO,
    "PromotionTask",
    "open-pr",
    spec={
        "vars": [{"name": "repo"}, {"name": "branch", "value": "main"}],
        "steps": [
            {"uses": "git-clone", "config": {"repoURL": "${{ vars.repo }}"}},
            {"uses": "git-open-pr", "as": "open", "continueOnError": True},
            {"uses": "compose-output", "config": {"pr": "${{ task.outputs.open.pr }}"}},
        ],
    },
)
CLUSTER_PROMOTION_TASK = doc(
    KARGO,
    "ClusterPromotionTask",
    "open-pr",
    namespace=None,
    spec={"steps": [{"uses": "git-open-pr", "if": "${{ always() }}"}]},
)
WEB_METRIC = {
    "name": "health",
    "interval": "30s",
    "count": 5,
    "failureLimit": 1,
    "inconclusiveLimit": "2",
    "consecutiveErrorLimit": 4,
    "successCondition": "result.status == 'ok'",
    "provider": {
        "web": {
            "url": "https://example.com/{{ args.service }}/health",
            "method": "POST",
            "headers": [{"key": "Authorization", "value": "Bearer {{ args.token }}"}],
            "jsonBody": {"check": "deep"},
            "timeoutSeconds": 10,
            "jsonPath": "{$.status}",
        }
    },
}
ANALYSIS_TEMPLATE = doc(
    ROLLOUTS,
    "AnalysisTemplate",
    "health",
    spec={
        "args": [
            {"name": "service"},
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "t"}}},
        ],
        "metrics": [WEB_METRIC],
    },
)
# The seed page's AnalysisTemplate (note `metadata:` with no value, i.e. null).
ANALYSIS_TEMPLATE_JOB = doc(
    ROLLOUTS,
    "AnalysisTemplate",
    "kargo-demo",
    spec={
        "metrics": [
            {
                "name": "test",
                "provider": {
                    "job": {
                        "metadata": None,
                        "spec": {
                            "backoffLimit": 1,
                            "template": {
                                "spec": {
                                    "containers": [
                                        {
                                            "name": "test",
                                            "image": "alpine:latest",
                                            "command": ["sleep", "10"],
                                            "env": [{"name": "A", "value": "b"}],
                                            "resources": {"limits": {"cpu": 1, "memory": "64Mi"}},
                                        }
                                    ],
                                    "restartPolicy": "Never",
                                }
                            },
                        },
                    }
                },
            }
        ]
    },
)
ANALYSIS_TEMPLATE_PROMETHEUS = doc(
    ROLLOUTS,
    "AnalysisTemplate",
    "error-rate",
    spec={
        "dryRun": [{"metricName": ".*"}],
        "measurementRetention": [{"metricName": "error-rate", "limit": 20}],
        "metrics": [
            {
                "name": "error-rate",
                "interval": "1m",
                "initialDelay": "30s",
                "failureCondition": "result[0] > 0.05",
                "provider": {
                    "prometheus": {
                        "address": "http://prometheus.monitoring:9090",
                        "query": "sum(rate(errors[5m]))",
                        "timeout": 30,
                        "rangeQuery": {"start": "now() - duration('5m')", "end": "now()"},
                        "authentication": {"basicAuth": {"username": "u", "password": "p"}},
                    }
                },
            },
            {
                "name": "datadog",
                "provider": {"datadog": {"query": "avg:latency{*}", "apiVersion": "v2"}},
            },
            {"name": "newrelic", "provider": {"newRelic": {"query": "SELECT 1"}}},
            {"name": "plugin", "provider": {"plugin": {"argoproj-labs/sample": {"x": 1}}}},
        ],
    },
)
CLUSTER_ANALYSIS_TEMPLATE = doc(
    ROLLOUTS,
    "ClusterAnalysisTemplate",
    "health",
    namespace=None,
    spec={"metrics": [WEB_METRIC], "templates": [{"templateName": "base", "clusterScope": True}]},
)
ANALYSIS_RUN = doc(
    ROLLOUTS,
    "AnalysisRun",
    "test.01j2w7aknhf3j7jteyqs72hnbg.101bca5",
    spec={
        "metrics": [WEB_METRIC],
        "args": [{"name": "service", "value": "api"}, {"name": "token", "value": "x"}],
        "terminate": False,
        "ttlStrategy": {"secondsAfterCompletion": 3600},
    },
    status={
        "phase": "Successful",
        "startedAt": "2024-07-15T22:13:34Z",
        "completedAt": "2024-07-15T22:13:57Z",
        "runSummary": {"count": 1, "successful": 1},
        "metricResults": [
            {
                "name": "health",
                "phase": "Successful",
                "count": 1,
                "successful": 1,
                "measurements": [
                    {
                        "phase": "Successful",
                        "value": "ok",
                        "startedAt": "2024-07-15T22:13:34Z",
                        "finishedAt": "2024-07-15T22:13:35Z",
                        "metadata": {"job-name": "x"},
                    }
                ],
            }
        ],
    },
)

NAME_253 = ".".join(["s" * 63] * 3) + "." + "s" * 61

VALID = {
    "project": PROJECT,
    "project-with-status": PROJECT_WITH_STATUS,
    "project-with-labels": changed(PROJECT, "metadata.labels", {"kargo.akuity.io/project": "true"}),
    # A null map value is pruned like a null field: no entry, not a type error.
    "project-label-null-value": changed(PROJECT, "metadata.labels", {"team": None, "tier": "web"}),
    "project-annotations-all-null": changed(PROJECT, "metadata.annotations", {"note": None}),
    "projectconfig-match-labels-null-value": changed(
        PROJECT_CONFIG,
        "spec.promotionPolicies.0.stageSelector",
        {"name": "glob:test*", "matchLabels": {"tier": None, "env": "test"}},
    ),
    "stage-analysis-run-labels-null-value": changed(
        STAGE_VERIFICATION, "spec.verification.analysisRunMetadata.labels", {"foo": None}
    ),
    "freight-status-map-null-entry": changed(FREIGHT, "status.approvedFor", {"prod": None}),
    "project-exported-metadata": changed(
        PROJECT,
        "metadata",
        {
            "name": "kargo-demo",
            "uid": "0b0c6a3e-1f5b-4c8e-9a39-7c1f3d1c2a10",
            "resourceVersion": "12345",
            "generation": 2,
            "creationTimestamp": "2024-07-15T22:00:00Z",
            "finalizers": ["kargo.akuity.io/finalizer"],
            "annotations": {"kargo.akuity.io/keep-namespace": "true"},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        },
    ),
    "projectconfig": PROJECT_CONFIG,
    "projectconfig-empty": doc(KARGO, "ProjectConfig", "kargo-demo"),
    "warehouse": WAREHOUSE,
    "warehouse-full": WAREHOUSE_FULL,
    "warehouse-git-branch": WAREHOUSE_GIT_BRANCH,
    "warehouse-generic-subscription": WAREHOUSE_GENERIC,
    "warehouse-with-status": WAREHOUSE_WITH_STATUS,
    "warehouse-null-shard": changed(WAREHOUSE, "spec.shard", None),
    "stage-direct": STAGE_TEST,
    "stage-upstream": STAGE_UAT,
    "stage-promotion-template": STAGE_TEMPLATE,
    "stage-task-step": STAGE_TASK_STEP,
    "stage-verification": STAGE_VERIFICATION,
    "stage-control-flow": changed(STAGE_UAT, "metadata.name", "gate"),
    "stage-with-status": STAGE_STATUS,
    "stage-old-status-export": STAGE_OLD_STATUS,
    "stage-availability-empty": changed(
        STAGE_UAT, "spec.requestedFreight.0.sources.availabilityStrategy", ""
    ),
    "stage-targets": changed(
        STAGE_TEST, "spec.targets", {"selectors": [{"matchLabels": {"region": "eu"}}]}
    ),
    "freight": FREIGHT,
    "freight-minimal": FREIGHT_MINIMAL,
    "promotion": PROMOTION,
    "promotion-by-origin": PROMOTION_BY_ORIGIN,
    "promotiontask": PROMOTION_TASK,
    "clusterpromotiontask": CLUSTER_PROMOTION_TASK,
    "analysistemplate-web": ANALYSIS_TEMPLATE,
    "analysistemplate-job": ANALYSIS_TEMPLATE_JOB,
    "analysistemplate-prometheus": ANALYSIS_TEMPLATE_PROMETHEUS,
    "analysistemplate-empty-spec": doc(ROLLOUTS, "AnalysisTemplate", "empty", spec={}),
    "clusteranalysistemplate": CLUSTER_ANALYSIS_TEMPLATE,
    "analysisrun": ANALYSIS_RUN,
    "analysisrun-pending": changed(ANALYSIS_RUN, "status", {"phase": ""}),
    # Boundary values and less common (but valid) forms: we must not be stricter than Kargo.
    "project-name-63-chars": changed(PROJECT, "metadata.name", "p" * 63),
    "stage-name-253-chars": changed(STAGE_TEST, "metadata.name", NAME_253),
    "stage-multiple-origins": changed(
        STAGE_TEST,
        "spec.requestedFreight",
        [
            {
                "origin": {"kind": "Warehouse", "name": "microservice-a"},
                "sources": {"direct": True},
            },
            {
                "origin": {"kind": "Warehouse", "name": "microservice-b"},
                "sources": {"direct": True},
            },
        ],
    ),
    "stage-soak-fractional": changed(
        STAGE_UAT, "spec.requestedFreight.0.sources.requiredSoakTime", "1.5h30m0.5s"
    ),
    "stage-match-upstream": changed(
        STAGE_UAT,
        "spec.requestedFreight.0.sources.autoPromotionOptions.selectionPolicy",
        "MatchUpstream",
    ),
    "stage-step-if-only": changed(
        STAGE_TEST,
        "spec.promotionTemplate",
        {"spec": {"steps": [{"uses": "fail", "if": "${{ failure() }}", "config": {}}]}},
    ),
    "stage-template-vars-only": changed(
        STAGE_TEST, "spec.promotionTemplate", {"spec": {"vars": [{"name": "_x"}]}}
    ),
    "stage-empty-sources": changed(STAGE_TEST, "spec.requestedFreight.0.sources", {}),
    "warehouse-interval-compound": changed(WAREHOUSE, "spec.interval", "1h30m15.5s"),
    "warehouse-discovery-limits": changed(
        WAREHOUSE,
        "spec.subscriptions",
        [
            {"image": {"repoURL": "nginx", "discoveryLimit": 1}},
            {"git": {"repoURL": "https://github.com/a/b", "discoveryLimit": 100}},
        ],
    ),
    "warehouse-ssh-git-url": changed(
        WAREHOUSE, "spec.subscriptions.1.git.repoURL", "ssh://git@github.com/example/repo.git"
    ),
    "warehouse-image-registry-port": changed(
        WAREHOUSE, "spec.subscriptions.0.image.repoURL", "localhost:5000/team/app"
    ),
    "warehouse-image-deprecated-tag-filters": changed(
        WAREHOUSE,
        "spec.subscriptions.0.image",
        {
            "repoURL": "nginx",
            "imageSelectionStrategy": "Lexical",
            "allowTags": "^nightly-",
            "ignoreTags": ["nightly-broken"],
            "ignoreTagsRegexes": ["-rc$"],
        },
    ),
    "warehouse-image-newest-build": changed(
        WAREHOUSE, "spec.subscriptions.0.image.imageSelectionStrategy", "NewestBuild"
    ),
    "warehouse-git-newest-tag": changed(
        WAREHOUSE,
        "spec.subscriptions.1.git",
        {
            "repoURL": "https://github.com/a/b",
            "commitSelectionStrategy": "NewestTag",
            "ignoreTags": ["v0.0.1"],
            "allowTags": "^v",
            "insecureSkipTLSVerify": True,
        },
    ),
    "warehouse-chart-http-port": changed(
        WAREHOUSE_FULL, "spec.subscriptions.2.chart.repoURL", "http://charts.local:8080/stable"
    ),
    "warehouse-generic-with-type": changed(
        WAREHOUSE_GENERIC,
        "spec.subscriptions.0",
        {"s3": {"subscriptionType": "s3", "name": "bucket", "config": {}}},
    ),
    "projectconfig-all-receivers": changed(
        PROJECT_CONFIG,
        "spec.webhookReceivers",
        [
            {"name": kind, kind: {"secretRef": {"name": "s"}}}
            for kind in (
                "azure",
                "bitbucket",
                "dockerhub",
                "gitea",
                "github",
                "gitlab",
                "harbor",
                "quay",
            )
        ]
        + [{"name": "jfrog", "artifactory": {"secretRef": {}, "virtualRepoName": "v"}}],
    ),
    "projectconfig-rollback-verification": changed(
        PROJECT_CONFIG,
        "spec.promotionPolicies.1.autoRollback",
        {"onPromotion": [], "onVerification": ["Failed", "Error"]},
    ),
    "projectconfig-label-selector": changed(
        PROJECT_CONFIG,
        "spec.promotionPolicies.0.stageSelector",
        {
            "matchLabels": {"tier": "dev"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}],
        },
    ),
    "projectconfig-with-status": changed(
        PROJECT_CONFIG,
        "status",
        {
            "observedGeneration": 3,
            "webhookReceivers": [{"name": "my-receiver", "path": "/webhook/github/abc"}],
        },
    ),
    "freight-images-only": changed(FREIGHT_MINIMAL, "images", FREIGHT_REFERENCE["images"]),
    "freight-fractional-time": changed(FREIGHT, "discoveredAt", "2024-07-15T22:10:00.123456+02:00"),
    "promotion-with-target": changed(PROMOTION_BY_ORIGIN, "spec.target", "eu-west-1"),
    "promotiontask-step-options": changed(
        PROMOTION_TASK,
        "spec.steps.1",
        {
            "uses": "git-open-pr",
            "as": "open",
            "if": "${{ vars.branch != '' }}",
            "retry": {"errorThreshold": 2},
            "vars": [{"name": "title", "value": "Promote ${{ ctx.stage }}"}],
        },
    ),
    "analysistemplate-more-providers": changed(
        ANALYSIS_TEMPLATE,
        "spec.metrics",
        [
            {"name": "g", "provider": {"graphite": {"address": "http://g", "query": "q"}}},
            {"name": "i", "provider": {"influxdb": {"profile": "p", "query": "q"}}},
            {"name": "w", "provider": {"wavefront": {"address": "w", "query": "q"}}},
            {"name": "s", "provider": {"skywalking": {"address": "s", "interval": "1m"}}},
            {
                "name": "cw",
                "provider": {
                    "cloudWatch": {
                        "interval": "5m",
                        "metricDataQueries": [
                            {
                                "id": "rate",
                                "metricStat": {
                                    "metric": {"metricName": "Errors", "namespace": "AWS/ELB"},
                                    "period": 300,
                                    "stat": "Sum",
                                },
                            }
                        ],
                    }
                },
            },
            {
                "name": "k",
                "provider": {
                    "kayenta": {
                        "address": "https://kayenta",
                        "application": "app",
                        "canaryConfigName": "c",
                        "metricsAccountName": "m",
                        "configurationAccountName": "c",
                        "storageAccountName": "s",
                        "threshold": {"pass": 90, "marginal": 75},
                        "scopes": [
                            {
                                "name": "default",
                                "controlScope": {"scope": "a", "region": "r", "step": 60},
                                "experimentScope": {"scope": "b", "region": "r", "step": 60},
                            }
                        ],
                    }
                },
            },
        ],
    ),
    "analysistemplate-limits-as-strings": changed(
        ANALYSIS_TEMPLATE,
        "spec.metrics.0",
        WEB_METRIC
        | {"count": "{{ args.count }}", "failureLimit": -1, "consecutiveSuccessLimit": 3},
    ),
    "analysistemplate-job-full": changed(
        ANALYSIS_TEMPLATE_JOB,
        "spec.metrics.0.provider.job",
        {
            "metadata": {"labels": {"app": "smoke"}, "annotations": {"a": "b"}},
            "spec": {
                "ttlSecondsAfterFinished": 60,
                "activeDeadlineSeconds": 300,
                "template": {
                    "metadata": {"labels": {"app": "smoke"}},
                    "spec": {
                        "serviceAccountName": "smoke",
                        "restartPolicy": "Never",
                        "volumes": [{"name": "cfg", "configMap": {"name": "smoke"}}],
                        "containers": [
                            {
                                "name": "smoke",
                                "image": "curlimages/curl:8.8.0",
                                "args": ["-fsS", "http://app/health"],
                                "ports": [{"containerPort": 8080}],
                                "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
                                "securityContext": {"runAsNonRoot": True},
                                "env": [
                                    {
                                        "name": "TOKEN",
                                        "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}},
                                    }
                                ],
                            }
                        ],
                    },
                },
            },
        },
    ),
    "analysisrun-dry-run-summary": changed(
        ANALYSIS_RUN,
        "status",
        {"phase": "Running", "dryRunSummary": {"count": 1, "successful": 1}, "message": "ok"},
    ),
    "clusteranalysistemplate-args-only": doc(
        ROLLOUTS,
        "ClusterAnalysisTemplate",
        "args-only",
        namespace=None,
        spec={"args": [{"name": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
    ),
}

INVALID = {
    # Names and metadata (the API server's ObjectMeta rules).
    "project-unknown-spec": changed(PROJECT, "spec", {"promotionPolicies": []}),
    "project-name-with-dot": changed(PROJECT, "metadata.name", "kargo.demo"),
    "stage-name-uppercase": changed(STAGE_TEST, "metadata.name", "Test"),
    "project-name-64-chars": changed(PROJECT, "metadata.name", "p" * 64),
    "stage-name-254-chars": changed(STAGE_TEST, "metadata.name", NAME_253 + "s"),
    "stage-name-missing": changed(STAGE_TEST, "metadata.name", delete=True),
    "stage-metadata-missing": changed(STAGE_TEST, "metadata", delete=True),
    "stage-metadata-unknown-field": changed(STAGE_TEST, "metadata.color", "red"),
    "stage-namespace-invalid": changed(STAGE_TEST, "metadata.namespace", "kargo_demo"),
    "stage-label-not-string": changed(STAGE_TEST, "metadata.labels", {"tier": 1}),
    "stage-label-not-string-beside-null": changed(
        STAGE_TEST, "metadata.labels", {"tier": 1, "team": None}
    ),
    # Unknown fields at each level.
    "stage-unknown-top-level": changed(STAGE_TEST, "specs", {}),
    "stage-unknown-in-spec": changed(STAGE_TEST, "spec.requestedFreights", []),
    "stage-unknown-in-list-item": changed(
        STAGE_TEMPLATE, "spec.promotionTemplate.spec.steps.0.with", {}
    ),
    "warehouse-git-unknown-field": changed(WAREHOUSE, "spec.subscriptions.1.git.repoUrl", "x"),
    "freight-commit-unknown-field": changed(FREIGHT, "commits.0.sha", "abc"),
    "analysistemplate-unknown-provider": changed(
        ANALYSIS_TEMPLATE, "spec.metrics.0.provider", {"webb": {"url": "https://x"}}
    ),
    "analysistemplate-job-container-typo": changed(
        ANALYSIS_TEMPLATE_JOB,
        "spec.metrics.0.provider.job.spec.template.spec.containers.0.imagee",
        "alpine",
    ),
    # Required fields.
    "warehouse-no-spec": changed(WAREHOUSE, "spec", delete=True),
    "warehouse-no-subscriptions": changed(WAREHOUSE, "spec.subscriptions", delete=True),
    "warehouse-git-no-repo-url": changed(WAREHOUSE, "spec.subscriptions.1.git", {"branch": "main"}),
    "stage-no-sources": changed(STAGE_TEST, "spec.requestedFreight.0.sources", delete=True),
    "stage-origin-no-name": changed(STAGE_TEST, "spec.requestedFreight.0.origin.name", delete=True),
    "stage-template-no-spec": changed(STAGE_TEST, "spec.promotionTemplate", {}),
    "stage-verification-arg-no-value": changed(
        STAGE_VERIFICATION, "spec.verification.args", [{"name": "foo"}]
    ),
    "stage-status-condition-no-reason": changed(
        STAGE_STATUS, "status.conditions.0.reason", delete=True
    ),
    "freight-no-origin": changed(FREIGHT, "origin", delete=True),
    "freight-artifact-no-version": changed(FREIGHT, "artifacts.0.version", delete=True),
    "promotion-no-steps": changed(PROMOTION, "spec.steps", delete=True),
    "promotion-no-stage": changed(PROMOTION, "spec.stage", delete=True),
    "promotiontask-no-steps": changed(PROMOTION_TASK, "spec", {"vars": []}),
    "promotiontask-var-no-name": changed(PROMOTION_TASK, "spec.vars.0", {"value": "x"}),
    "analysistemplate-metric-no-provider": changed(
        ANALYSIS_TEMPLATE, "spec.metrics.0.provider", delete=True
    ),
    "analysistemplate-web-no-url": changed(
        ANALYSIS_TEMPLATE, "spec.metrics.0.provider.web.url", delete=True
    ),
    "analysistemplate-job-no-template": changed(
        ANALYSIS_TEMPLATE_JOB, "spec.metrics.0.provider.job.spec", {"backoffLimit": 1}
    ),
    "analysisrun-no-metrics": changed(ANALYSIS_RUN, "spec.metrics", delete=True),
    "analysisrun-status-no-phase": changed(ANALYSIS_RUN, "status.phase", delete=True),
    "projectconfig-receiver-no-secret": changed(
        PROJECT_CONFIG, "spec.webhookReceivers.0.github", {}
    ),
    # Enums.
    "warehouse-creation-policy": changed(WAREHOUSE, "spec.freightCreationPolicy", "Auto"),
    "warehouse-git-strategy": changed(
        WAREHOUSE, "spec.subscriptions.1.git.commitSelectionStrategy", "Newest"
    ),
    "warehouse-image-strategy": changed(
        WAREHOUSE, "spec.subscriptions.0.image.imageSelectionStrategy", "Latest"
    ),
    "stage-origin-kind": changed(STAGE_TEST, "spec.requestedFreight.0.origin.kind", "Stage"),
    "stage-availability-strategy": changed(
        STAGE_UAT, "spec.requestedFreight.0.sources.availabilityStrategy", "Any"
    ),
    "stage-task-kind": changed(
        STAGE_TASK_STEP, "spec.promotionTemplate.spec.steps.0.task.kind", "Task"
    ),
    "stage-verification-kind": changed(
        STAGE_VERIFICATION, "spec.verification.analysisTemplates.0.kind", "Rollout"
    ),
    "stage-status-condition-status": changed(STAGE_STATUS, "status.conditions.0.status", "Maybe"),
    "datadog-api-version": changed(
        ANALYSIS_TEMPLATE_PROMETHEUS, "spec.metrics.1.provider.datadog.apiVersion", "v3"
    ),
    "projectconfig-window-kind": changed(PROJECT_CONFIG, "spec.promotionWindows.0.kind", "Maybe"),
    "projectconfig-generic-action": changed(
        PROJECT_CONFIG, "spec.webhookReceivers.1.generic.actions.0.action", "Promote"
    ),
    # Patterns and formats.
    "warehouse-interval": changed(WAREHOUSE, "spec.interval", "5 minutes"),
    "warehouse-interval-days": changed(WAREHOUSE, "spec.interval", "1d"),
    "warehouse-image-with-tag": changed(
        WAREHOUSE, "spec.subscriptions.0.image.repoURL", "nginx:1.2"
    ),
    "warehouse-git-url": changed(WAREHOUSE, "spec.subscriptions.1.git.repoURL", "github.com/a/b"),
    "warehouse-chart-url": changed(
        WAREHOUSE_FULL, "spec.subscriptions.2.chart.repoURL", "ftp://charts.example.com"
    ),
    "warehouse-image-platform": changed(
        WAREHOUSE_FULL, "spec.subscriptions.1.image.platform", "linux"
    ),
    "warehouse-git-branch": changed(
        WAREHOUSE_GIT_BRANCH, "spec.subscriptions.0.git.branch", "-main"
    ),
    "warehouse-git-since": changed(
        WAREHOUSE_GIT_BRANCH, "spec.subscriptions.0.git.since", "yesterday"
    ),
    "warehouse-subscription-name": changed(
        WAREHOUSE_GENERIC, "spec.subscriptions.0.name", "My_Art"
    ),
    "stage-soak-time": changed(
        STAGE_UAT, "spec.requestedFreight.0.sources.requiredSoakTime", "1 day"
    ),
    "stage-var-name": changed(STAGE_TEMPLATE, "spec.vars.0.name", "1repo"),
    "stage-task-name": changed(
        STAGE_TASK_STEP, "spec.promotionTemplate.spec.steps.0.task.name", "Open_PR"
    ),
    "promotion-stage-name": changed(PROMOTION, "spec.stage", "Test Stage"),
    "stage-status-time": changed(STAGE_STATUS, "status.conditions.0.lastTransitionTime", "today"),
    "freight-discovered-at": changed(FREIGHT, "discoveredAt", "2024-07-15"),
    # Lengths and item counts.
    "warehouse-no-subscription-items": changed(WAREHOUSE, "spec.subscriptions", []),
    "warehouse-image-discovery-limit": changed(
        WAREHOUSE, "spec.subscriptions.0.image.discoveryLimit", 101
    ),
    "warehouse-generic-discovery-limit": changed(
        WAREHOUSE_GENERIC, "spec.subscriptions.0.s3.discoveryLimit", 0
    ),
    "stage-no-requested-freight": changed(STAGE_TEST, "spec.requestedFreight", []),
    "stage-no-template-steps": changed(STAGE_TEMPLATE, "spec.promotionTemplate.spec.steps", []),
    "promotion-no-step-items": changed(PROMOTION, "spec.steps", []),
    "promotion-empty-freight": changed(PROMOTION, "spec.freight", ""),
    "clusterpromotiontask-empty-uses": changed(CLUSTER_PROMOTION_TASK, "spec.steps.0.uses", ""),
    "projectconfig-link-empty-title": changed(PROJECT_CONFIG, "spec.freightLinks.0.title", ""),
    "projectconfig-generic-no-actions": changed(
        PROJECT_CONFIG, "spec.webhookReceivers.1.generic.actions", []
    ),
    "projectconfig-rollback-duplicates": changed(
        PROJECT_CONFIG, "spec.promotionPolicies.1.autoRollback.onPromotion", ["Failed", "Failed"]
    ),
    # Subscription item shape (Kargo's decoder).
    "warehouse-two-subscription-types": changed(
        WAREHOUSE, "spec.subscriptions.0.git", {"repoURL": "https://github.com/a/b"}
    ),
    "warehouse-empty-subscription": changed(WAREHOUSE, "spec.subscriptions.0", {}),
    # Types.
    "stage-direct-not-bool": changed(STAGE_TEST, "spec.requestedFreight.0.sources.direct", "true"),
    "stage-continue-on-error-string": changed(
        STAGE_TEMPLATE, "spec.promotionTemplate.spec.steps.5.continueOnError", "yes"
    ),
    "stage-retry-threshold-string": changed(
        STAGE_TEMPLATE, "spec.promotionTemplate.spec.steps.5.retry.errorThreshold", "3"
    ),
    "stage-stages-not-list": changed(STAGE_UAT, "spec.requestedFreight.0.sources.stages", "test"),
    "analysistemplate-count-list": changed(ANALYSIS_TEMPLATE, "spec.metrics.0.count", [5]),
    "analysisrun-terminate-string": changed(ANALYSIS_RUN, "spec.terminate", "true"),
    "analysistemplate-retention-limit-string": changed(
        ANALYSIS_TEMPLATE_PROMETHEUS, "spec.measurementRetention.0.limit", "20"
    ),
    "warehouse-subscriptions-not-list": changed(WAREHOUSE, "spec.subscriptions", {"git": {}}),
    "freight-status-soak-not-string": changed(FREIGHT, "status.verifiedIn.test.longestSoak", 3600),
}

CORPUS = [(name, document, True) for name, document in VALID.items()]
CORPUS += [(name, document, False) for name, document in INVALID.items()]


@pytest.mark.parametrize(
    ("document", "expected_valid"),
    [pytest.param(document, valid, id=name) for name, document, valid in CORPUS],
)
def test_validator_agrees_with_oracle(oracle, document, expected_valid):
    oracle_accepts, oracle_errors = oracle(document)
    # The corpus must exercise what it claims to: valid documents pass the oracle, and each
    # invalid one breaks a rule the oracle enforces.
    assert oracle_accepts == expected_valid, oracle_errors
    ours = validate_document(document)
    assert (ours == []) == oracle_accepts, ours


def test_corpus_covers_every_kind_and_is_balanced():
    kinds = {document["kind"] for _, document, _ in CORPUS}
    assert kinds == {
        "Project",
        "ProjectConfig",
        "Warehouse",
        "Stage",
        "Freight",
        "Promotion",
        "PromotionTask",
        "ClusterPromotionTask",
        "AnalysisTemplate",
        "ClusterAnalysisTemplate",
        "AnalysisRun",
    }
    assert len(CORPUS) >= 60
    assert len(VALID) >= 30 and len(INVALID) >= 30


# Where we deliberately differ from the oracle. Each entry: document, whether the oracle accepts
# it, whether we accept it, and why. Asserting both sides keeps the list honest.
DIVERGENCES = {
    # Step `config` is `x-kubernetes-preserve-unknown-fields` with no type, so the API server takes
    # any JSON value; Kargo reads it as an object (and evaluates expressions inside it).
    "step-config-not-object": (
        changed(CLUSTER_PROMOTION_TASK, "spec.steps.0.config", "oops"),
        True,
        False,
    ),
    # Same for Freight artifact metadata ("It must be an object", says Kargo's API doc).
    "artifact-metadata-not-object": (changed(FREIGHT, "artifacts.0.metadata", [1, 2]), True, False),
    # Container resource quantities are likewise untyped in the Argo Rollouts CRD; Kubernetes
    # reads them as a map of quantities.
    "resource-limits-not-object": (
        changed(
            ANALYSIS_TEMPLATE_JOB,
            "spec.metrics.0.provider.job.spec.template.spec.containers.0.resources.limits",
            "1 cpu",
        ),
        True,
        False,
    ),
    # The job provider's deep Kubernetes structures are accepted as objects (left to the API
    # server that receives the Job); the CRD closes them.
    "job-probe-typo": (
        changed(
            ANALYSIS_TEMPLATE_JOB,
            "spec.metrics.0.provider.job.spec.template.spec.containers.0.livenessProbe",
            {"httpGett": {"port": 80}},
        ),
        False,
        True,
    ),
}


@pytest.mark.parametrize(
    ("document", "oracle_expected", "ours_expected"),
    [pytest.param(*case, id=name) for name, case in DIVERGENCES.items()],
)
def test_documented_divergences(oracle, document, oracle_expected, ours_expected):
    assert oracle(document)[0] == oracle_expected
    assert (validate_document(document) == []) == ours_expected
