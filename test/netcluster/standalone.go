package netcluster

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Build builds a cluster outside a test, for the demo: it stays up after
// this process exits (its processes run in their own process groups) until
// Teardown, or Close from the same process, removes it.
func Build(o Options) (*Cluster, error) {
	c, err := layout(o)
	if err != nil {
		return nil, err
	}
	if err := c.build(); err != nil {
		return nil, errors.Join(fmt.Errorf("build %s: %w", c.Prefix, err), c.Close())
	}
	return c, nil
}

// Teardown removes what an earlier process's Build left: every process in,
// and every namespace named, prefix-*, then root. Missing pieces are fine.
func Teardown(prefix, root string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("teardown: bad prefix %q", prefix)
	}
	names, err := filepath.Glob(filepath.Join(netnsRunDir, prefix+"-*"))
	if err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	var errs []error
	for _, path := range names {
		ns := filepath.Base(path)
		if !strings.HasPrefix(ns, prefix+"-") {
			continue
		}
		if err := killStragglers(ns); err != nil {
			errs = append(errs, err)
		}
		if _, err := run(nil, "ip", "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if root != "" {
		if err := os.RemoveAll(root); err != nil {
			errs = append(errs, fmt.Errorf("teardown: remove %s: %w", root, err))
		}
	}
	return errors.Join(errs...)
}

// OpenEchoServer is ServeTCP for callers without a testing.TB (the demo);
// the caller closes it.
func OpenEchoServer(ns string, addr netip.AddrPort) (*EchoServer, error) {
	return serveTCP(ns, addr)
}

// OpenCapture is StartCapture for callers without a testing.TB; Stop ends
// it, Close of the cluster at the latest.
func (c *Cluster) OpenCapture() (*Capture, error) {
	return c.startCapture()
}
