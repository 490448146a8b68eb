// Package testenv gives tests the real peers Sluice talks to, installed on first use.
//
// End-to-end tests run Sluice against real MCP clients and servers: the official
// conformance suite and the reference servers from npm (which need node 22 or later),
// and the Go SDK's conformance server. A fresh clone must be able to run `go test ./...`
// with nothing but Go, node and npm on the machine, so each helper here installs what it
// returns the first time it is asked, at a pinned version, into a cache directory:
// <module root>/.cache/testenv, or $SLUICE_TESTENV_DIR when set.
//
// Installs are idempotent (a stamp file records what a directory holds) and guarded by a
// file lock, so several test binaries started in parallel by `go test ./...` wait for one
// another instead of racing. The first run downloads (tens of seconds); later runs only
// check the stamps.
//
// The helpers that take a [testing.TB] fail the test when an install fails: a missing
// peer is a broken environment, never a reason to skip. The Install functions return
// errors instead, for programs such as scripts/testenv.
package testenv
