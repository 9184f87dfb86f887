package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Runner is the seam between the table logic and the kernel: the save and
// restore tools of one backend and family. Commands runs the real
// binaries; unit tests give a fake.
type Runner interface {
	// Save returns iptables-save output: of one table, or of every table
	// the kernel has instantiated when table is "".
	Save(ctx context.Context, table string) ([]byte, error)
	// Restore feeds a script to iptables-restore --noflush: every table
	// in it changes atomically, or not at all.
	Restore(ctx context.Context, script string) error
}

// Commands are the binaries of one backend and family. They implement
// Runner.
type Commands struct {
	Save, Restore string
	// LockProbe is the --wait-interval for iptables-restore.
	LockProbe time.Duration
}

// ErrNoBinary means neither backend's binaries were found.
var ErrNoBinary = errors.New("no iptables binaries found")

// CommandsFor returns the save and restore binaries of a backend.
func CommandsFor(backend string, family int, lockProbe time.Duration) (Commands, error) {
	save, err := binary(family, backend, "save")
	if err != nil {
		return Commands{}, err
	}
	restore, err := binary(family, backend, "restore")
	if err != nil {
		return Commands{}, err
	}
	return Commands{Save: save, Restore: restore, LockProbe: lockProbe}, nil
}

// Runner returns the commands as a Runner.
func (c Commands) Runner() Runner { return execRunner{c} }

type execRunner struct{ c Commands }

func (r execRunner) Save(ctx context.Context, table string) ([]byte, error) {
	if table != "" {
		return r.save(ctx, "-t", table)
	}
	return r.save(ctx)
}

func (r execRunner) save(ctx context.Context, args ...string) ([]byte, error) {
	c := r.c
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.Save, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", c.Save, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func (r execRunner) Restore(ctx context.Context, script string) error {
	c := r.c
	args := []string{"--noflush", "--wait", "10"}
	if c.LockProbe > 0 {
		args = append(args, "--wait-interval", fmt.Sprint(c.LockProbe.Microseconds()))
	}
	cmd := exec.CommandContext(ctx, c.Restore, args...)
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", c.Restore, err, strings.TrimSpace(out.String()))
	}
	return nil
}
