package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// requiredSysctls are the kernel settings the datapath depends on, in the
// agent's network namespace. src_valid_mark makes the reverse-path check of
// a decrypted packet use its mark, so it finds the tunnel route in
// crosswire's table instead of failing strict rp_filter against the main
// table's underlay route.
func requiredSysctls() [][2]string {
	return [][2]string{{"net/ipv4/conf/all/src_valid_mark", "1"}}
}

// EnsureSysctls writes every required setting that differs under root
// (normally /proc/sys) and returns the ones it changed.
func EnsureSysctls(root string) ([]string, error) {
	var changed []string
	for _, kv := range requiredSysctls() {
		key, want := kv[0], kv[1]
		path := filepath.Join(root, key)
		cur, err := os.ReadFile(path)
		if err != nil {
			return changed, fmt.Errorf("read sysctl %s: %w", key, err)
		}
		if strings.TrimSpace(string(cur)) == want {
			continue
		}
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			return changed, fmt.Errorf("set sysctl %s=%s: %w", key, want, err)
		}
		changed = append(changed, strings.ReplaceAll(key, "/", ".")+"="+want)
	}
	return changed, nil
}
