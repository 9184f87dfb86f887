// Package metricstest helps tests hold README's metrics table to what the
// agent registers: a Registerer that records every metric name registered
// through it, and the names README's table lists, by row.
//
// Test code only: it owns nothing and touches nothing but the README it
// reads.
package metricstest
