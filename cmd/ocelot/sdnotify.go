package main

import (
	"net"
	"os"
	"strconv"
	"time"
)

// sdNotify sends a state to systemd (READY=1, WATCHDOG=1, STATUS=...) when
// run under a unit with NotifyAccess; without NOTIFY_SOCKET it does nothing.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer c.Close()
	c.Write([]byte(state))
}

// watchdogInterval is half of systemd's WatchdogSec, or 0 when unset.
func watchdogInterval() time.Duration {
	us, err := strconv.Atoi(os.Getenv("WATCHDOG_USEC"))
	if err != nil || us <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}
