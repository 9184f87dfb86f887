package ipsets

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Runner is the seam between the set logic and the ipset tool. Command
// runs the real binary; unit tests give a fake.
type Runner interface {
	// Save returns "ipset save" output (every set, with members).
	Save(ctx context.Context) ([]byte, error)
	// Restore feeds a script to "ipset restore -exist". Lines before a
	// failing one have taken effect.
	Restore(ctx context.Context, script string) error
}

// Netlink writes member changes of hash:net sets straight to the kernel
// (NetlinkSocket).
type Netlink interface {
	Write(changes []Change) error
}

// Command runs the ipset binary at Path ("ipset" if empty).
type Command struct{ Path string }

func (c Command) path() string {
	if c.Path == "" {
		return "ipset"
	}
	return c.Path
}

// Save runs "ipset save".
func (c Command) Save(ctx context.Context) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.path(), "save")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ipset save: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Restore runs "ipset restore -exist" on script.
func (c Command) Restore(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, c.path(), "restore", "-exist")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ipset restore: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
