"""Manifests shaped like the examples in Kargo's documentation must validate.

Kargo's docs (docs/docs/ in akuity/kargo: the how-to guides for projects, Warehouses, Stages,
Freight and verification, and the reference pages on promotion templates, promotion tasks,
promotion steps, analysis templates and webhook receivers) show what users write and what
`kubectl get -o yaml` gives back. The documents below are our own, written to exercise the same
shapes and the same scalar forms: unquoted RFC 3339 timestamps (in `since`, in status blocks, in
exported metadata, in a step config), YAML 1.1 scalars such as `yes` and `on` in free-form
config, null values in label maps. Each is loaded as manifests are (kargo.yamlio, which reads
YAML as the API server does) and must validate with no error, as Kargo accepts it.
"""

import pytest

from kargo import yamlio
from kargo.specs import KINDS, dump, parse_document, validate_document

WAREHOUSE_SUBSCRIPTIONS = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: shop-sources
  namespace: shop
spec:
  interval: 10m
  freightCreationPolicy: Automatic
  freightCreationCriteria:
    expression: |
      imageFrom('registry.example.com/shop/api').Tag == chartFrom('oci://registry.example.com/charts/api').Version
  subscriptions:
  - name: config
    git:
      repoURL: https://git.example.com/shop/config.git
      branch: main
      since: 2025-03-01T08:30:00Z
      expressionFilter: "!(subject contains '[skip kargo]') && commitDate.After(date('2025-01-01'))"
      includePaths:
      - apps/api
      - glob:shared/*.yaml
      excludePaths:
      - regex:.*_test\\.yaml$
  - git:
      repoURL: https://git.example.com/shop/releases.git
      commitSelectionStrategy: NewestTag
      allowTagsRegexes: ["^release-"]
      expressionFilter: creatorDate.Year() >= 2025 && tagger != ''
      discoveryLimit: 5
  - image:
      repoURL: registry.example.com/shop/api
      constraint: ^2.0.0
      platform: linux/arm64
  - image:
      repoURL: registry.example.com/shop/worker
      imageSelectionStrategy: Digest
      constraint: stable
  - chart:
      repoURL: oci://registry.example.com/charts/api
      semverConstraint: ">=2.0.0 <3.0.0"
  - chart:
      repoURL: https://charts.example.com
      name: cache
"""

WAREHOUSE_EXPORT = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: shop-images
  namespace: shop
  creationTimestamp: 2025-02-10T09:00:00Z
  generation: 4
  resourceVersion: "88102"
  uid: 5d1c1f0e-0c4a-4d43-9c1e-2f1f5f7b8a01
  labels:
    kargo.akuity.io/shard: null
spec:
  subscriptions:
  - image:
      repoURL: registry.example.com/shop/api
status:
  conditions:
  - type: Ready
    status: "True"
    reason: ArtifactsDiscovered
    message: ""
    lastTransitionTime: 2025-02-10T09:05:12Z
    observedGeneration: 4
  discoveredArtifacts:
    discoveredAt: 2025-02-10T09:05:11Z
    images:
    - repoURL: registry.example.com/shop/api
      references:
      - tag: 2.3.1
        digest: sha256:4f1c9b2e7d3a
        createdAt: 2025-02-09T17:42:00Z
    git:
    - repoURL: https://git.example.com/shop/config.git
      commits:
      - id: 3b18e512dba79e4c8300dd08aeb37f8e728b8dad
        subject: bump api
        creatorDate: 2025-02-10T08:59:30+01:00
  lastFreightID: 9c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f0a2b4c6d
  observedGeneration: 4
"""

STAGE = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: staging
  namespace: shop
  labels:
    env: staging
    owner: null
spec:
  vars:
  - name: gitRepo
    value: https://git.example.com/shop/config.git
  requestedFreight:
  - origin:
      kind: Warehouse
      name: shop-sources
    sources:
      stages: [dev, qa]
      availabilityStrategy: All
      requiredSoakTime: 1h30m
      autoPromotionOptions:
        selectionPolicy: MatchUpstream
  - origin:
      kind: Warehouse
      name: shop-images
    sources:
      direct: true
  promotionTemplate:
    spec:
      vars:
      - name: branch
        value: env/${{ ctx.stage }}
      steps:
      - uses: git-clone
        config:
          repoURL: ${{ vars.gitRepo }}
          checkout:
          - branch: main
            path: ./src
          - branch: ${{ vars.branch }}
            create: yes
            path: ./out
      - uses: yaml-update
        as: update
        if: ${{ success() }}
        retry:
          errorThreshold: 3
          timeout: 10m
        config:
          path: ./src/values.yaml
          updates:
          - key: deployedAt
            value: 2025-02-10T09:30:00Z
          - key: releaseDate
            value: 2025-02-10
          - key: canary
            value: on
      - task:
          name: open-and-merge-pr
          kind: ClusterPromotionTask
        as: pr
        vars:
        - name: repo
          value: ${{ vars.gitRepo }}
      - uses: argocd-update
        continueOnError: true
        config:
          apps:
          - name: shop-${{ ctx.stage }}
            sources:
            - repoURL: ${{ vars.gitRepo }}
              desiredRevision: ${{ outputs.pr.commit }}
  verification:
    analysisTemplates:
    - name: smoke-test
    - name: error-rate
      kind: ClusterAnalysisTemplate
    analysisRunMetadata:
      labels:
        team: shop
      annotations:
        ticket: null
    args:
    - name: commit
      value: ${{ commitFrom(vars.gitRepo).ID }}
"""

STAGE_EXPORT = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Stage
metadata:
  name: dev
  namespace: shop
  creationTimestamp: 2025-02-01T12:00:00Z
spec:
  requestedFreight:
  - origin:
      kind: Warehouse
      name: shop-sources
    sources:
      direct: true
status:
  phase: Steady
  freightSummary: 1/1 Fulfilled
  autoPromotionEnabled: true
  observedGeneration: 2
  conditions:
  - type: Healthy
    status: "True"
    reason: Healthy
    message: ""
    lastTransitionTime: 2025-02-10T09:41:03Z
  lastPromotion:
    name: dev.01jkq3m8w4r5t6y7u8i9o0p1a2.9c2d4e6
    finishedAt: 2025-02-10T09:40:58Z
    freight:
      name: 9c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f0a2b4c6d
      origin:
        kind: Warehouse
        name: shop-sources
    status:
      phase: Succeeded
      startedAt: 2025-02-10T09:40:01Z
      finishedAt: 2025-02-10T09:40:58Z
  freightHistory:
  - id: 7e1f3a5c
    items:
      Warehouse/shop-sources:
        name: 9c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f0a2b4c6d
        origin:
          kind: Warehouse
          name: shop-sources
        commits:
        - repoURL: https://git.example.com/shop/config.git
          id: 3b18e512dba79e4c8300dd08aeb37f8e728b8dad
          healthCheckCommit: 3b18e512dba79e4c8300dd08aeb37f8e728b8dad
    verificationHistory:
    - id: 0f6b2c1e-8d4a-4b7e-9c3f-1a2b3c4d5e6f
      phase: Successful
      startTime: 2025-02-10T09:41:10Z
      finishTime: 2025-02-10T09:43:02Z
      analysisRun:
        name: dev.01jkq3p2b3c4d5e6f7g8h9j0k1.7e1f3a5
        namespace: shop
        phase: Successful
  health:
    status: Healthy
    argoCDApps:
    - name: shop-dev
      healthStatus:
        status: Healthy
"""

PROMOTION_EXPORT = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Promotion
metadata:
  name: staging.01jkq4a1b2c3d4e5f6g7h8j9k0.9c2d4e6
  namespace: shop
  creationTimestamp: 2025-02-10T10:00:00Z
  annotations:
    kargo.akuity.io/create-actor: admin
spec:
  stage: staging
  freight: 9c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f0a2b4c6d
  vars:
  - name: gitRepo
    value: https://git.example.com/shop/config.git
  steps:
  - uses: git-clone
    config:
      repoURL: ${{ vars.gitRepo }}
  - uses: git-open-pr
    as: pr::open
    config:
      sourceBranch: env/staging
      createTargetBranch: yes
  - uses: git-wait-for-pr
    as: pr::wait
    config:
      prNumber: ${{ outputs['pr::open'].pr.id }}
status:
  phase: Succeeded
  message: All steps completed
  currentStep: 3
  startedAt: 2025-02-10T10:00:01Z
  finishedAt: 2025-02-10T10:03:44Z
  freight:
    name: 9c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f0a2b4c6d
    origin:
      kind: Warehouse
      name: shop-sources
  state:
    pr::open:
      pr:
        id: 42
        merged: no
  stepExecutionMetadata:
  - alias: step-1
    status: Succeeded
    startedAt: 2025-02-10T10:00:01Z
    finishedAt: 2025-02-10T10:00:09Z
  - alias: pr::open
    status: Succeeded
    errorCount: 0
    startedAt: 2025-02-10T10:00:09Z
    finishedAt: 2025-02-10T10:00:12Z
  healthChecks:
  - uses: argocd-update
    config:
      apps:
      - name: shop-staging
"""

PROMOTION_TASKS = """
apiVersion: kargo.akuity.io/v1alpha1
kind: PromotionTask
metadata:
  name: update-image
  namespace: shop
spec:
  vars:
  - name: image
  - name: path
    value: ./out
  steps:
  - uses: kustomize-set-image
    as: set-image
    config:
      path: ${{ vars.path }}
      images:
      - image: ${{ vars.image }}
        tag: ${{ imageFrom(vars.image).Tag }}
  - uses: git-commit
    if: ${{ outputs['set-image'] != nil }}
    config:
      path: ${{ vars.path }}
      message: ${{ task.outputs['set-image'].commitMessage }}
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ClusterPromotionTask
metadata:
  name: open-and-merge-pr
spec:
  vars:
  - name: repo
  steps:
  - uses: git-push
    as: push
    config:
      path: ./out
      generateTargetBranch: true
  - uses: git-open-pr
    as: open
    config:
      repoURL: ${{ vars.repo }}
      sourceBranch: ${{ task.outputs.push.branch }}
  - uses: git-wait-for-pr
    config:
      repoURL: ${{ vars.repo }}
      prNumber: ${{ task.outputs.open.pr.id }}
"""

PROJECT_AND_CONFIG = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Project
metadata:
  name: shop
  labels:
    cost-center: null
---
apiVersion: kargo.akuity.io/v1alpha1
kind: ProjectConfig
metadata:
  name: shop
  namespace: shop
spec:
  promotionPolicies:
  - stageSelector:
      name: dev
    autoPromotionEnabled: true
  - stageSelector:
      name: "regex:^qa-[0-9]+$"
    autoPromotionEnabled: true
  - stageSelector:
      name: glob:prod-*
      matchLabels:
        shop.example.com/auto-promote: "true"
        region: null
    autoRollback: {}
  - stageSelector:
      matchExpressions:
      - key: tier
        operator: In
        values: [edge, core]
    autoRollback:
      onPromotion: [Failed, Errored]
      onVerification: [Failed, Error]
  webhookReceivers:
  - name: github
    github:
      secretRef:
        name: github-webhook
  - name: artifactory
    artifactory:
      secretRef:
        name: artifactory-webhook
      virtualRepoName: docker-virtual
  - name: ci
    generic:
      secretRef:
        name: ci-webhook
      actions:
      - action: Refresh
        whenExpression: request.header('X-Event') == 'build-done'
        parameters:
          source: ci
          note: null
        targetSelectionCriteria:
        - kind: Warehouse
          name: ${{ request.body.warehouse }}
        - kind: Warehouse
          labelSelector:
            matchLabels:
              team: shop
        - kind: Warehouse
          indexSelector:
            matchIndices:
            - key: subscribedURLs
              operator: Equals
              value: ${{ normalizeGit(request.body.repository.url) }}
  freightLinks:
  - title: Build
    url: https://ci.example.com/builds/{{ .freight.alias }}
  stageLinks:
  - title: Dashboard
    url: https://grafana.example.com/d/shop?var-env={{ .stage.name }}
    if: stage.name startsWith 'prod'
status:
  conditions:
  - type: Ready
    status: "True"
    reason: Synced
    message: ProjectConfig is synced
    lastTransitionTime: 2025-02-10T09:00:00Z
    observedGeneration: 1
  webhookReceivers:
  - name: github
    path: /webhook/github/5f0c1d2e3a4b
    url: https://kargo.example.com/webhook/github/5f0c1d2e3a4b
"""

FREIGHT_EXPORT = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Freight
metadata:
  name: 9c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f0a2b4c6d
  namespace: shop
  creationTimestamp: 2025-02-10T09:05:13Z
  labels:
    kargo.akuity.io/alias: brave-badger
alias: brave-badger
origin:
  kind: Warehouse
  name: shop-sources
discoveredAt: 2025-02-10T09:05:11Z
commits:
- repoURL: https://git.example.com/shop/config.git
  id: 3b18e512dba79e4c8300dd08aeb37f8e728b8dad
  branch: main
  message: bump api
images:
- repoURL: registry.example.com/shop/api
  tag: 2.3.1
  digest: sha256:4f1c9b2e7d3a
  annotations:
    org.opencontainers.image.created: 2025-02-09T17:42:00Z
    org.opencontainers.image.source: null
charts:
- repoURL: oci://registry.example.com/charts/api
  version: 2.3.1
status:
  approvedFor:
    prod-east:
      approvedAt: 2025-02-11T08:00:00Z
  currentlyIn:
    staging:
      since: 2025-02-10T10:03:44Z
  verifiedIn:
    dev:
      verifiedAt: 2025-02-10T09:43:02Z
      longestSoak: 2h15m0s
  metadata:
    release:
      approvedBy: ops
      window: on
"""

ANALYSIS_TEMPLATES = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke-test
  namespace: shop
spec:
  args:
  - name: commit
  - name: service
    value: shop-api
  - name: api-token
    valueFrom:
      secretKeyRef:
        name: smoke-test
        key: token
  metrics:
  - name: smoke
    provider:
      job:
        metadata:
          labels:
            app: smoke
        spec:
          backoffLimit: 1
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: smoke
                image: registry.example.com/shop/smoke:1.4
                command: [sh, -c]
                args: ["./smoke.sh --timeout 30 --commit {{args.commit}}"]
                env:
                - name: RETRIES
                  value: "3"
                - name: TOKEN
                  value: "{{args.api-token}}"
  - name: health
    interval: 30s
    count: 4
    failureLimit: 1
    successCondition: result == 'ok'
    provider:
      web:
        url: https://{{args.service}}.shop.svc/healthz
        headers:
        - key: Authorization
          value: Bearer {{args.api-token}}
        jsonPath: "{$.status}"
        timeoutSeconds: 10
  dryRun:
  - metricName: health
  measurementRetention:
  - metricName: smoke
    limit: 5
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: error-rate
spec:
  args:
  - name: service
  metrics:
  - name: error-rate
    interval: 1m
    initialDelay: 30s
    count: "{{args.count}}"
    successCondition: len(result) == 0 || result[0] < 0.05
    provider:
      prometheus:
        address: http://prometheus.monitoring.svc:9090
        query: |
          sum(rate(http_requests_total{service="{{args.service}}",code=~"5.."}[5m]))
          /
          sum(rate(http_requests_total{service="{{args.service}}"}[5m]))
"""

ANALYSIS_RUN_EXPORT = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: dev.01jkq3p2b3c4d5e6f7g8h9j0k1.7e1f3a5
  namespace: shop
  creationTimestamp: 2025-02-10T09:41:10Z
  generation: 3
  resourceVersion: "90211"
  uid: 2c6e9a1f-4b3d-4e8f-a0b1-c2d3e4f5a6b7
  labels:
    kargo.akuity.io/stage: dev
    kargo.akuity.io/freight-collection: 7e1f3a5c
  annotations:
    kargo.akuity.io/promotion: dev.01jkq3m8w4r5t6y7u8i9o0p1a2.9c2d4e6
  ownerReferences:
  - apiVersion: kargo.akuity.io/v1alpha1
    kind: Freight
    name: 9c2d4e6f8a0b1c3d5e7f9a1b3c5d7e9f0a2b4c6d
    uid: 8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d
    blockOwnerDeletion: false
spec:
  metrics:
  - name: smoke
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: smoke
                image: alpine:3.21
                command: [sleep, "5"]
status:
  phase: Successful
  message: ""
  startedAt: 2025-02-10T09:41:10Z
  completedAt: 2025-02-10T09:43:02Z
  dryRunSummary: {}
  runSummary:
    count: 1
    successful: 1
  metricResults:
  - name: smoke
    phase: Successful
    count: 1
    successful: 1
    measurements:
    - phase: Successful
      startedAt: 2025-02-10T09:41:10Z
      finishedAt: 2025-02-10T09:43:01Z
      metadata:
        job-name: 2c6e9a1f-4b3d-4e8f-a0b1-c2d3e4f5a6b7.smoke.1
        job-namespace: shop
"""

EXAMPLES = {
    "warehouse-subscriptions": WAREHOUSE_SUBSCRIPTIONS,
    "warehouse-export": WAREHOUSE_EXPORT,
    "stage": STAGE,
    "stage-export": STAGE_EXPORT,
    "promotion-export": PROMOTION_EXPORT,
    "promotion-tasks": PROMOTION_TASKS,
    "project-and-config": PROJECT_AND_CONFIG,
    "freight-export": FREIGHT_EXPORT,
    "analysis-templates": ANALYSIS_TEMPLATES,
    "analysis-run-export": ANALYSIS_RUN_EXPORT,
}

DOCUMENTS = [
    pytest.param(document, id=f"{name}-{document['kind']}")
    for name, text in EXAMPLES.items()
    for document in yamlio.load_all(text)
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_docs_shaped_example_is_valid(document):
    assert validate_document(document) == []


@pytest.mark.parametrize("document", DOCUMENTS)
def test_docs_shaped_example_round_trips(document):
    # What we store (defaults filled, nulls dropped) is itself a valid manifest.
    assert validate_document(dump(parse_document(document))) == []


def test_examples_cover_every_kind():
    assert {document.values[0]["kind"] for document in DOCUMENTS} == set(KINDS)


def test_unquoted_timestamps_stay_the_strings_written():
    warehouse = parse_document(yamlio.load(WAREHOUSE_SUBSCRIPTIONS))
    assert warehouse.spec.subscriptions[0].git.since == "2025-03-01T08:30:00Z"
    run = yamlio.load(ANALYSIS_RUN_EXPORT)
    assert run["status"]["startedAt"] == "2025-02-10T09:41:10Z"
    assert run["metadata"]["creationTimestamp"] == "2025-02-10T09:41:10Z"


def test_step_config_keeps_yaml_1_1_scalars_as_the_api_server_reads_them():
    stage = yamlio.load(STAGE)
    steps = dump(parse_document(stage))["spec"]["promotionTemplate"]["spec"]["steps"]
    # `yes` and `on` are booleans in YAML 1.1; dates and timestamps stay strings.
    assert steps[0]["config"]["checkout"][1]["create"] is True
    assert [update["value"] for update in steps[1]["config"]["updates"]] == [
        "2025-02-10T09:30:00Z",
        "2025-02-10",
        True,
    ]


def test_null_label_values_are_dropped():
    stage = dump(parse_document(yamlio.load(STAGE)))
    assert stage["metadata"]["labels"] == {"env": "staging"}
    assert stage["spec"]["verification"]["analysisRunMetadata"]["annotations"] == {}
