//go:build tools

// Package corednsbuild pins the CoreDNS that pykubelet's harness builds for cluster DNS (kept in
// its own module: its cloud-provider plugins drag grpc/otel versions of their own).
package corednsbuild

import _ "github.com/coredns/coredns"
