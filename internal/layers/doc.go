// Package layers holds one test (layers_test.go): that every package of
// the module imports only what its layer allows. Data flows one way,
//
//	etcd -> datastore -> calc -> dataplane -> kernel
//
// and the packages that carry it between layers (resource, contract,
// selector) are leaves below all of them. docs/design/overview.md explains
// the table; change both together.
//
// It owns nothing and changes nothing: it parses the module's source
// files.
package layers
