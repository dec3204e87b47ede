package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryMax is where cgroup v2 shows the container's memory limit.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// memoryLimitShare is the part of the container's memory limit the Go
// runtime may use before it collects harder: the rest is for what it does
// not count (the kernel's socket buffers, thread stacks outside Go).
const memoryLimitShare = 0.9

// setMemoryLimit gives the Go runtime a soft memory limit below the
// container's, unless GOMEMLIMIT is set: without one the heap may grow to
// twice the live data between collections, and at thousands of peers that
// alone crosses a limit sized for the live data, so the kernel kills the
// agent where a collection would have done. It returns the limit set (0 if
// none) for the log.
func setMemoryLimit(path string) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, nil // not in a cgroup v2 container
	}
	if err != nil {
		return 0, fmt.Errorf("read memory limit: %w", err)
	}
	s := strings.TrimSpace(string(raw))
	if s == "max" || s == "" {
		return 0, nil
	}
	limit, err := strconv.ParseInt(s, 10, 64)
	if err != nil || limit <= 0 {
		return 0, fmt.Errorf("memory limit in %s: %q is not a byte count", path, s)
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft, nil
}
