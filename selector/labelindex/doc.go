// Package labelindex is the incremental index between selectors and
// labelled items (endpoints, network sets). It reports each (selector, item)
// pair exactly once when it starts matching and once when it stops, whatever
// the order in which items, selectors and parents are added, changed and
// removed.
//
// It never evaluates every selector against every item. Each selector is
// filed under label keys it requires (selector.RequiredLabels), choosing the
// alternative with the fewest items at the time; items are kept in posting
// lists per label key. A new selector scans only the items holding its keys;
// an item change re-evaluates only the selectors filed under the keys the
// item has (or had), plus the few selectors that require no label at all
// (all(), pure negations), which must be checked against everything.
//
// Items may inherit labels from parents (Calico profiles' labelsToApply):
// an item's own labels win, then its parents' in order. A parent's label
// change re-evaluates its children.
//
// The index is pure and single-threaded: callbacks run synchronously inside
// the call that caused them and must not call back into the index.
package labelindex
