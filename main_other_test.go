//go:build !unix

package main

import "github.com/rogpeppe/go-internal/testscript"

// cmdSignal needs Unix signals; the scripts that use it skip elsewhere.
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	ts.Fatalf("signal: Unix only")
}
