package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// health aggregates reporters as Felix's health endpoints do: /liveness
// and /readiness answer 200 with a table when every reporter is live
// (ready), 503 otherwise.
type health struct {
	mu        sync.Mutex
	reporters map[string]*reporter
}

type reporter struct {
	timeout     time.Duration // 0: never times out
	live, ready bool
	detail      string
	last        time.Time
}

func newHealth() *health { return &health{reporters: map[string]*reporter{}} }

func (h *health) register(name string, timeout time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reporters[name] = &reporter{timeout: timeout, live: true, last: time.Now()}
}

// report records a reporter's state now.
func (h *health) report(name string, live, ready bool, detail string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.reporters[name]
	r.live, r.ready, r.detail, r.last = live, ready, detail, time.Now()
}

// status reports whether all reporters are live and ready, and a table.
func (h *health) status() (live, ready bool, table string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	live, ready = true, true
	names := make([]string, 0, len(h.reporters))
	for n := range h.reporters {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%-28s %-8s %-16s %-16s %s\n", "COMPONENT", "TIMEOUT", "LIVENESS", "READINESS", "DETAIL")
	for _, n := range names {
		r := h.reporters[n]
		l, rd := r.live, r.ready
		detail := r.detail
		if r.timeout > 0 && time.Since(r.last) > r.timeout {
			l, rd, detail = false, false, "timed out; "+detail
		}
		live, ready = live && l, ready && rd
		timeout := "-"
		if r.timeout > 0 {
			timeout = r.timeout.String()
		}
		word := func(ok bool, yes string) string {
			if ok {
				return "reporting " + yes
			}
			return "reporting non-" + yes
		}
		fmt.Fprintf(&b, "%-28s %-8s %-16s %-16s %s\n", n, timeout, word(l, "live"), word(rd, "ready"), detail)
	}
	return live, ready, b.String()
}

func (h *health) handler() http.Handler {
	mux := http.NewServeMux()
	serve := func(w http.ResponseWriter, ok bool, table string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprint(w, table)
	}
	mux.HandleFunc("/liveness", func(w http.ResponseWriter, r *http.Request) {
		live, _, t := h.status()
		serve(w, live, t)
	})
	mux.HandleFunc("/readiness", func(w http.ResponseWriter, r *http.Request) {
		_, ready, t := h.status()
		serve(w, ready, t)
	})
	return mux
}
