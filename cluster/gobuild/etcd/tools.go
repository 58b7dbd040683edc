//go:build tools

// Package etcdbuild pins the etcd server that pykubelet's harness builds (kept apart from the
// Kubernetes module so their grpc/otel versions do not mix).
package etcdbuild

import _ "go.etcd.io/etcd/server/v3"
