//go:build tools

// Package crictlbuild pins the crictl that pykubelet's harness builds.
package crictlbuild

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
