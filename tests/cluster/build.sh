#!/usr/bin/env bash
# Builds the real control plane into .cluster/bin/ (at the repository's top): etcd,
# kube-apiserver and kube-controller-manager, from the module in this folder.
#
# Rebuilds only when go.mod, go.sum or this script changed since the last build (a stamp records
# their checksum); Go's module and build caches make a warm rebuild take seconds.
# Needs Go (the version go.mod names; GOTOOLCHAIN may fetch it through the module proxy).
# Exits non-zero naming the component whose build failed, with the tail of its log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=$top/.cluster/bin
mkdir -p "$bin"

stamp="$bin/.build-stamp"
want=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] \
    && [[ -x $bin/etcd && -x $bin/kube-apiserver && -x $bin/kube-controller-manager ]]; then
    echo "cluster binaries up to date in $bin"
    exit 0
fi
rm -f "$stamp"

command -v go >/dev/null 2>&1 || { echo "build.sh: go not found on PATH" >&2; exit 1; }

# The version the binaries report (kubectl version, /version), as upstream's hack/lib/version.sh
# stamps it; the minor also selects the emulation-version defaults.
version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/go.mod")
[[ $version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || {
    echo "build.sh: cannot read the k8s.io/kubernetes version from go.mod ('$version')" >&2
    exit 1
}
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

export CGO_ENABLED=0
cd "$here"
build() {  # name package
    local name=$1 pkg=$2 log
    log=$(mktemp)
    local start=$SECONDS
    if ! go build -trimpath -ldflags "$ldflags" -o "$bin/$name.new" "$pkg" >"$log" 2>&1; then
        echo "build.sh: building $name ($pkg) failed:" >&2
        tail -n 40 "$log" >&2
        rm -f "$log" "$bin/$name.new"
        exit 1
    fi
    rm -f "$log"
    mv -f "$bin/$name.new" "$bin/$name"
    echo "built $name in $((SECONDS - start)) s"
}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
echo "$want" >"$stamp"
