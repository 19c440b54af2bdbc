"""The `job` metric: a Kubernetes Job through the kubernetes client. It needs cluster access,
which this server does not have yet (the Kubernetes issue brings it): until then a run with a
job metric ends Error at once with this reason, never silently Successful."""

from . import UNAVAILABLE

UNAVAILABLE["job"] = (
    "the job metric provider needs Kubernetes cluster access, which this server does not have "
    "yet: use a web or prometheus metric"
)
