//go:build tools

// Package cluster only pins the upstream commands build.sh compiles: kube-apiserver and
// kube-controller-manager from k8s.io/kubernetes, and etcd (the server module's own main package).
package cluster

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
