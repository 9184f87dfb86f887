package dataplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"ocelot/contract"
)

// statusFiles writes Felix's per-endpoint status files
// (EndpointStatusPathPrefix): one file per endpoint whose policy is
// programmed and whose interface is up, in <prefix>/endpoint-status,
// named "<orchestrator> <workload> <endpoint>" (each part URL-path
// escaped, as Felix names them), holding the interface, MAC and
// addresses as JSON; removed when the endpoint goes down or away. Files
// are replaced atomically (a temporary file renamed over the old one). At
// the first apply the directory is read and files of this format that no
// endpoint wants are removed; other files are left alone.
type statusFiles struct {
	dir string // "" when off
	log *slog.Logger

	want   map[string][]byte   // file -> content, for endpoints that are up
	dirty  map[string]struct{} // files to write or remove
	synced bool                // the directory has been read once
}

// statusDir is the directory under EndpointStatusPathPrefix (Felix's).
const statusDir = "endpoint-status"

func newStatusFiles(prefix string, log *slog.Logger) *statusFiles {
	s := &statusFiles{log: log, want: map[string][]byte{}, dirty: map[string]struct{}{}}
	switch {
	case prefix == "":
	case !filepath.IsAbs(prefix):
		log.Warn("EndpointStatusPathPrefix is not an absolute path; no endpoint status files are written", "prefix", prefix)
	default:
		s.dir = filepath.Join(filepath.Clean(prefix), statusDir)
	}
	return s
}

// statusFileName is Felix's name for an endpoint's file.
func statusFileName(id contract.EndpointID) string {
	return url.PathEscape(id.Orchestrator) + " " + url.PathEscape(id.WorkloadID) + " " + url.PathEscape(id.EndpointID)
}

// ours reports whether a file name has the form statusFileName makes.
func ours(name string) bool {
	parts := strings.Split(name, " ")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if _, err := url.PathUnescape(p); err != nil || p == "" {
			return false
		}
	}
	return true
}

// epStatus is the file's content, with Felix's field names.
type epStatus struct {
	IfaceName string   `json:"ifaceName,omitempty"`
	Mac       string   `json:"mac,omitempty"`
	Ipv4Nets  []string `json:"ipv4Nets,omitempty"`
	Ipv6Nets  []string `json:"ipv6Nets,omitempty"`
}

// Set records an endpoint's status: up (ep is the endpoint) or not.
func (s *statusFiles) Set(id contract.EndpointID, ep *contract.EndpointUpdate, up bool) {
	if s.dir == "" {
		return
	}
	name := statusFileName(id)
	if len(name) > 255 {
		s.log.Warn("endpoint status file name too long; not written", "key", id.String())
		return
	}
	if !up || ep == nil {
		if _, ok := s.want[name]; ok {
			delete(s.want, name)
			s.dirty[name] = struct{}{}
		}
		return
	}
	st := epStatus{IfaceName: ep.Name, Mac: ep.MAC}
	for _, n := range ep.IPv4Nets {
		st.Ipv4Nets = append(st.Ipv4Nets, n.String())
	}
	for _, n := range ep.IPv6Nets {
		st.Ipv6Nets = append(st.Ipv6Nets, n.String())
	}
	b, _ := json.Marshal(st)
	if old, ok := s.want[name]; !ok || !bytes.Equal(old, b) {
		s.want[name] = b
		s.dirty[name] = struct{}{}
	}
}

// Dirty reports whether Apply has work.
func (s *statusFiles) Dirty() bool { return s.dir != "" && (!s.synced || len(s.dirty) > 0) }

// Apply brings the directory in line: the first time, every file of ours
// is checked; then only those that changed. Failures stay dirty.
func (s *statusFiles) Apply() error {
	if s.dir == "" {
		return nil
	}
	if !s.synced {
		if err := s.sync(); err != nil {
			return err
		}
		s.synced = true
	}
	var errs []error
	for name := range s.dirty {
		var err error
		if b, ok := s.want[name]; ok {
			err = s.write(name, b)
		} else if err = os.Remove(filepath.Join(s.dir, name)); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		delete(s.dirty, name)
	}
	if len(errs) > 0 {
		return fmt.Errorf("endpoint status files: %d failed, first: %w", len(errs), errs[0])
	}
	return nil
}

// sync creates the directory and marks every file to fix: files of ours
// no endpoint wants, wanted files that differ or are missing, and
// temporary files left by an interrupted write.
func (s *statusFiles) sync() error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("endpoint status directory: %w", err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("endpoint status directory: %w", err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		switch {
		case !e.Type().IsRegular():
		case strings.HasPrefix(name, ".ocelot-"):
			_ = os.Remove(filepath.Join(s.dir, name)) // a temporary left by a crash; retried at the next sweep
		case ours(name):
			have[name] = true
			if b, wanted := s.want[name]; !wanted {
				s.dirty[name] = struct{}{}
			} else if cur, err := os.ReadFile(filepath.Join(s.dir, name)); err != nil || !bytes.Equal(cur, b) {
				s.dirty[name] = struct{}{}
			}
		}
	}
	for name := range s.want {
		if !have[name] {
			s.dirty[name] = struct{}{}
		}
	}
	return nil
}

// write replaces a file atomically.
func (s *statusFiles) write(name string, b []byte) error {
	f, err := os.CreateTemp(s.dir, ".ocelot-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp) // the write's error is the one to report
	}
	return err
}
