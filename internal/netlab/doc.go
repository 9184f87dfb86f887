// Package netlab builds test networks out of network namespaces, veth
// pairs and routes, and probes them with real TCP and ICMP. Everything it
// creates carries a unique prefix and is removed when the test ends, pass
// or fail. It never changes the root namespace: Main re-runs a test binary
// inside a fresh namespace, and Require refuses to run a kernel test
// anywhere else.
//
// A kernel test that cannot run (not root, no namespaces, -short, a tool
// missing) skips on a developer's machine. With OCELOT_REQUIRE_KERNEL=1,
// which CI sets, it fails instead: a suite must not pass by skipping the
// tests that matter (see Unavailable).
package netlab
