#!/usr/bin/env bash
# The real half of `make test`: the tests marked `cluster` (everything that talks to a cluster
# through a kubeconfig) once more, against a real kube-apiserver, etcd and
# kube-controller-manager built from their Go modules (build.sh) and started by cluster.py.
#
# A cluster that is already up (make cluster-up) is used and left running; otherwise one is
# started for the run and stopped afterwards. Without Go the real half is skipped with a plain
# message, unless FARO_REQUIRE_REAL_CLUSTER=1 (CI), which makes that a failure.
# Arguments go to pytest.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
cd "$top"
py=${VENV_PY:-.venv/bin/python}

if ! command -v go >/dev/null 2>&1; then
    if [[ ${FARO_REQUIRE_REAL_CLUSTER:-} == 1 ]]; then
        echo "test-real: go not found, and FARO_REQUIRE_REAL_CLUSTER=1 requires the real half" >&2
        exit 1
    fi
    echo "==> real-cluster half SKIPPED: go is not installed, so no kube-apiserver can be built"
    echo "    (the simulator half above ran every test; install Go 1.26 to run both)"
    exit 0
fi

echo "==> building the real control plane (tests/cluster/build.sh)"
"$here/build.sh"

started=
if "$py" "$here/cluster.py" status >/dev/null 2>&1; then
    echo "==> using the cluster that is already up"
else
    echo "==> starting the real control plane"
    "$py" "$here/cluster.py" up
    started=1
fi
stop() { [[ -z $started ]] || "$py" "$here/cluster.py" down; }
trap stop EXIT

# FARO_E2E_KUBECONFIG (admin), FARO_E2E_FARO_KUBECONFIG (the operator's identity), FARO_E2E_ETCD
eval "$("$py" "$here/cluster.py" env)"
echo "==> the cluster tests against the real kube-apiserver ($FARO_E2E_KUBECONFIG)"
"$py" -m pytest -m cluster "$@"
