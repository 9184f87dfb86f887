// Package layers holds the module's structural tests (layers_test.go).
// Every package of the module imports only what its layer allows. Data
// flows one way,
//
//	etcd -> datastore -> calc -> dataplane -> kernel
//
// and the packages that carry it between layers (resource, contract,
// selector) are leaves below all of them. docs/design/overview.md explains
// the table; change both together. And every package has a doc.go, the
// one home of its package comment, which says what it owns and what it
// must not touch.
//
// It owns nothing and changes nothing: it parses the module's source
// files.
package layers
