"""Argo Rollouts' AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun, which Stages use for
verification, with their metric providers.
"""

from typing import Any, Literal

from pydantic import Field

from kargo.specs.base import (
    DateTime,
    IntOrString,
    JSONObject,
    KargoModel,
    LabelSelector,
    ObjectMeta,
    StatusModel,
    StringMap,
)


class FieldRef(KargoModel):
    fieldPath: str


class SecretKeyRef(KargoModel):
    name: str
    key: str


class ValueFrom(KargoModel):
    secretKeyRef: SecretKeyRef | None = None
    fieldRef: FieldRef | None = None


class Argument(KargoModel):
    # An argument without a value is required input (from Kargo's verification.args).
    name: str
    value: str | None = None
    valueFrom: ValueFrom | None = None


class DryRun(KargoModel):
    metricName: str


class MeasurementRetention(KargoModel):
    metricName: str
    limit: int


class TemplateRef(KargoModel):
    templateName: str | None = None
    clusterScope: bool | None = None


class WebMetricHeader(KargoModel):
    key: str
    value: str


class BasicAuth(KargoModel):
    username: str | None = None
    password: str | None = None


class OAuth2Config(KargoModel):
    tokenUrl: str | None = None
    clientId: str | None = None
    clientSecret: str | None = None
    scopes: list[str] | None = None


class Sigv4Config(KargoModel):
    region: str | None = None
    profile: str | None = None
    roleArn: str | None = None


class Authentication(KargoModel):
    basicAuth: BasicAuth | None = None
    oauth2: OAuth2Config | None = None
    sigv4: Sigv4Config | None = None


class WebMetric(KargoModel):
    url: str
    method: str | None = None
    headers: list[WebMetricHeader] | None = None
    body: str | None = None
    jsonBody: JSONObject | None = None
    timeoutSeconds: int | None = None
    jsonPath: str | None = None
    insecure: bool | None = None
    authentication: Authentication | None = None


class PrometheusRangeQuery(KargoModel):
    start: str | None = None
    end: str | None = None
    step: str | None = None


class PrometheusMetric(KargoModel):
    address: str | None = None
    query: str | None = None
    timeout: int | None = None
    insecure: bool | None = None
    headers: list[WebMetricHeader] | None = None
    authentication: Authentication | None = None
    rangeQuery: PrometheusRangeQuery | None = None


class DatadogSecretRef(KargoModel):
    name: str | None = None
    namespaced: bool | None = None


class DatadogMetric(KargoModel):
    apiVersion: Literal["v1", "v2"] = "v1"
    interval: str = "5m"
    requestTimeout: str = "10s"
    query: str | None = None
    queries: StringMap | None = None
    formula: str | None = None
    aggregator: (
        Literal["avg", "min", "max", "sum", "last", "percentile", "mean", "l2norm", "area"] | None
    ) = None
    secretRef: DatadogSecretRef | None = None


class CloudWatchDimension(KargoModel):
    name: str | None = None
    value: str | None = None


class CloudWatchMetricStatMetric(KargoModel):
    dimensions: list[CloudWatchDimension] | None = None
    metricName: str | None = None
    namespace: str | None = None


class CloudWatchMetricStat(KargoModel):
    metric: CloudWatchMetricStatMetric | None = None
    period: IntOrString | None = None
    stat: str | None = None
    unit: str | None = None


class CloudWatchMetricDataQuery(KargoModel):
    id: str | None = None
    expression: str | None = None
    label: str | None = None
    metricStat: CloudWatchMetricStat | None = None
    period: IntOrString | None = None
    returnData: bool | None = None


class CloudWatchMetric(KargoModel):
    interval: str | None = None
    metricDataQueries: list[CloudWatchMetricDataQuery]


class AddressQueryMetric(KargoModel):
    """Graphite and Wavefront."""

    address: str | None = None
    query: str | None = None


class InfluxdbMetric(KargoModel):
    profile: str | None = None
    query: str | None = None


class SkyWalkingMetric(KargoModel):
    address: str | None = None
    query: str | None = None
    interval: str | None = None


class NewRelicMetric(KargoModel):
    query: str
    profile: str | None = None
    timeout: int | None = None


class KayentaScopeDetail(KargoModel):
    scope: str
    region: str
    step: int
    start: str | None = None
    end: str | None = None


class KayentaScope(KargoModel):
    name: str
    controlScope: KayentaScopeDetail
    experimentScope: KayentaScopeDetail


class KayentaThreshold(KargoModel):
    pass_: int = Field(alias="pass")
    marginal: int


class KayentaMetric(KargoModel):
    address: str
    application: str
    canaryConfigName: str
    metricsAccountName: str
    configurationAccountName: str
    storageAccountName: str
    threshold: KayentaThreshold
    scopes: list[KayentaScope]
    lookback: bool | None = None


# The job provider embeds a batch/v1 JobSpec. Its top levels (JobSpec, PodSpec, Container) and
# the container fields most templates use (env, envFrom, ports, volumeMounts, resources) are
# closed here; deeper Kubernetes structures (affinity, probes, securityContext, volumes, ...) are
# accepted as objects and left to the API server that receives the Job.


class KeySelector(KargoModel):
    """ConfigMapKeySelector / SecretKeySelector."""

    key: str
    name: str = ""
    optional: bool | None = None


class ObjectFieldSelector(KargoModel):
    fieldPath: str
    apiVersion: str | None = None


class ResourceFieldSelector(KargoModel):
    resource: str
    containerName: str | None = None
    divisor: IntOrString | None = None


class FileKeySelector(KargoModel):
    key: str
    path: str
    volumeName: str
    optional: bool = False


class EnvVarSource(KargoModel):
    configMapKeyRef: KeySelector | None = None
    secretKeyRef: KeySelector | None = None
    fieldRef: ObjectFieldSelector | None = None
    resourceFieldRef: ResourceFieldSelector | None = None
    fileKeyRef: FileKeySelector | None = None


class EnvVar(KargoModel):
    name: str
    value: str | None = None
    valueFrom: EnvVarSource | None = None


class SourceReference(KargoModel):
    name: str = ""
    optional: bool | None = None


class EnvFromSource(KargoModel):
    configMapRef: SourceReference | None = None
    secretRef: SourceReference | None = None
    prefix: str | None = None


class ContainerPort(KargoModel):
    containerPort: int
    name: str | None = None
    protocol: str = "TCP"
    hostIP: str | None = None
    hostPort: int | None = None


class VolumeMount(KargoModel):
    name: str
    mountPath: str
    mountPropagation: str | None = None
    readOnly: bool | None = None
    recursiveReadOnly: str | None = None
    subPath: str | None = None
    subPathExpr: str | None = None


class ResourceRequirements(KargoModel):
    # Quantities may be written as numbers (cpu: 1) or strings (memory: 64Mi).
    limits: JSONObject | None = None
    requests: JSONObject | None = None
    claims: list[JSONObject] | None = None


class Container(KargoModel):
    name: str
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    workingDir: str | None = None
    env: list[EnvVar] | None = None
    envFrom: list[EnvFromSource] | None = None
    ports: list[ContainerPort] | None = None
    resources: ResourceRequirements | None = None
    resizePolicy: list[JSONObject] | None = None
    restartPolicy: str | None = None
    restartPolicyRules: list[JSONObject] | None = None
    volumeMounts: list[VolumeMount] | None = None
    volumeDevices: list[JSONObject] | None = None
    livenessProbe: JSONObject | None = None
    readinessProbe: JSONObject | None = None
    startupProbe: JSONObject | None = None
    lifecycle: JSONObject | None = None
    terminationMessagePath: str | None = None
    terminationMessagePolicy: str | None = None
    imagePullPolicy: str | None = None
    securityContext: JSONObject | None = None
    stdin: bool | None = None
    stdinOnce: bool | None = None
    tty: bool | None = None


class PodSpec(KargoModel):
    containers: list[Container]
    initContainers: list[Container] | None = None
    ephemeralContainers: list[JSONObject] | None = None
    volumes: Any = None
    restartPolicy: str | None = None
    terminationGracePeriodSeconds: int | None = None
    activeDeadlineSeconds: int | None = None
    dnsPolicy: str | None = None
    dnsConfig: JSONObject | None = None
    nodeSelector: StringMap | None = None
    nodeName: str | None = None
    serviceAccountName: str | None = None
    serviceAccount: str | None = None
    automountServiceAccountToken: bool | None = None
    hostNetwork: bool | None = None
    hostPID: bool | None = None
    hostIPC: bool | None = None
    hostUsers: bool | None = None
    shareProcessNamespace: bool | None = None
    securityContext: JSONObject | None = None
    imagePullSecrets: list[JSONObject] | None = None
    hostname: str | None = None
    hostnameOverride: str | None = None
    subdomain: str | None = None
    setHostnameAsFQDN: bool | None = None
    affinity: JSONObject | None = None
    schedulerName: str | None = None
    tolerations: list[JSONObject] | None = None
    hostAliases: list[JSONObject] | None = None
    priorityClassName: str | None = None
    priority: int | None = None
    preemptionPolicy: str | None = None
    readinessGates: list[JSONObject] | None = None
    runtimeClassName: str | None = None
    enableServiceLinks: bool | None = None
    overhead: JSONObject | None = None
    topologySpreadConstraints: list[JSONObject] | None = None
    os: JSONObject | None = None
    schedulingGates: list[JSONObject] | None = None
    resourceClaims: list[JSONObject] | None = None
    resources: JSONObject | None = None


class TemplateMetadata(KargoModel):
    labels: StringMap | None = None
    annotations: StringMap | None = None


class PodTemplateSpec(KargoModel):
    metadata: TemplateMetadata | None = None
    spec: PodSpec | None = None


class JobSpec(KargoModel):
    template: PodTemplateSpec
    parallelism: int | None = None
    completions: int | None = None
    activeDeadlineSeconds: int | None = None
    backoffLimit: int | None = None
    backoffLimitPerIndex: int | None = None
    maxFailedIndexes: int | None = None
    completionMode: str | None = None
    podFailurePolicy: JSONObject | None = None
    successPolicy: JSONObject | None = None
    podReplacementPolicy: str | None = None
    selector: LabelSelector | None = None
    manualSelector: bool | None = None
    suspend: bool | None = None
    ttlSecondsAfterFinished: int | None = None
    managedBy: str | None = None


class JobMetric(KargoModel):
    metadata: TemplateMetadata | None = None
    spec: JobSpec


class MetricProvider(KargoModel):
    web: WebMetric | None = None
    prometheus: PrometheusMetric | None = None
    job: JobMetric | None = None
    datadog: DatadogMetric | None = None
    newRelic: NewRelicMetric | None = None
    cloudWatch: CloudWatchMetric | None = None
    graphite: AddressQueryMetric | None = None
    influxdb: InfluxdbMetric | None = None
    kayenta: KayentaMetric | None = None
    skywalking: SkyWalkingMetric | None = None
    wavefront: AddressQueryMetric | None = None
    # Plugin providers are configured by the plugin: any object.
    plugin: JSONObject | None = None


class Metric(KargoModel):
    name: str
    provider: MetricProvider
    interval: str | None = None
    initialDelay: str | None = None
    count: IntOrString | None = None
    successCondition: str | None = None
    failureCondition: str | None = None
    failureLimit: IntOrString | None = None
    inconclusiveLimit: IntOrString | None = None
    consecutiveErrorLimit: IntOrString | None = None
    consecutiveSuccessLimit: IntOrString | None = None


class AnalysisTemplateSpec(KargoModel):
    metrics: list[Metric] | None = None
    args: list[Argument] | None = None
    dryRun: list[DryRun] | None = None
    measurementRetention: list[MeasurementRetention] | None = None
    templates: list[TemplateRef] | None = None


class AnalysisTemplate(KargoModel):
    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["AnalysisTemplate"]
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec


class ClusterAnalysisTemplate(KargoModel):
    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["ClusterAnalysisTemplate"]
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec


class TTLStrategy(KargoModel):
    secondsAfterCompletion: int | None = None
    secondsAfterFailure: int | None = None
    secondsAfterSuccess: int | None = None


class AnalysisRunSpec(KargoModel):
    metrics: list[Metric]
    args: list[Argument] | None = None
    terminate: bool | None = None
    dryRun: list[DryRun] | None = None
    measurementRetention: list[MeasurementRetention] | None = None
    ttlStrategy: TTLStrategy | None = None


class Measurement(StatusModel):
    phase: str
    message: str | None = None
    startedAt: DateTime | None = None
    finishedAt: DateTime | None = None
    resumeAt: DateTime | None = None
    value: str | None = None
    metadata: StringMap | None = None


class MetricResult(StatusModel):
    name: str
    phase: str
    measurements: list[Measurement] | None = None
    message: str | None = None
    count: int | None = None
    successful: int | None = None
    failed: int | None = None
    inconclusive: int | None = None
    error: int | None = None
    consecutiveError: int | None = None
    consecutiveSuccess: int | None = None
    dryRun: bool | None = None
    metadata: StringMap | None = None


class RunSummary(StatusModel):
    count: int | None = None
    successful: int | None = None
    failed: int | None = None
    inconclusive: int | None = None
    error: int | None = None


class AnalysisRunStatus(StatusModel):
    phase: str
    message: str | None = None
    metricResults: list[MetricResult] | None = None
    startedAt: DateTime | None = None
    completedAt: DateTime | None = None
    runSummary: RunSummary | None = None
    dryRunSummary: RunSummary | None = None


class AnalysisRun(KargoModel):
    apiVersion: Literal["argoproj.io/v1alpha1"]
    kind: Literal["AnalysisRun"]
    metadata: ObjectMeta
    spec: AnalysisRunSpec
    status: AnalysisRunStatus | None = None
