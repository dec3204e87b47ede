package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capNetAdmin is CAP_NET_ADMIN's bit in the capability sets.
const capNetAdmin = 12

// requireNetAdmin fails with what to change when the process lacks
// CAP_NET_ADMIN. Without it every later step fails on its own (the TUN
// device, the socket mark, nftables, rules and routes), each with a bare
// "operation not permitted" that does not say which setting is missing.
func requireNetAdmin(statusPath string) error {
	capEff, err := effectiveCaps(statusPath)
	if err != nil {
		return err
	}
	if capEff&(1<<capNetAdmin) == 0 {
		return fmt.Errorf("the agent needs the NET_ADMIN capability (TUN device, socket marks, nftables, rules and routes) "+
			"and runs without it (effective capabilities %#x): add NET_ADMIN to the container's "+
			"securityContext.capabilities.add (the chart does unless securityContext.capabilities is overridden)", capEff)
	}
	return nil
}

// effectiveCaps reads CapEff from a /proc/<pid>/status file.
func effectiveCaps(statusPath string) (uint64, error) {
	f, err := os.Open(statusPath)
	if err != nil {
		return 0, fmt.Errorf("capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("capabilities: CapEff %q: %w", v, err)
			}
			return caps, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("capabilities: %w", err)
	}
	return 0, fmt.Errorf("capabilities: no CapEff line in %s", statusPath)
}
