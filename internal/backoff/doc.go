// Package backoff spaces the retries of an operation that keeps failing:
// each delay is a factor longer than the one before, from a minimum up to
// a maximum, optionally spread by random jitter so that many agents do not
// retry in step. The dataplane, the datastore syncer and the status writer
// share it.
//
// A Backoff is plain state owned by its caller (not safe for concurrent
// use); the package has no global state and does no I/O beyond sleeping
// in Wait.
package backoff
