package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
)

// procSys is where the kernel exposes sysctls; in a hostNetwork pod the
// net.* ones are the node's.
const procSys = "/proc/sys"

func newSysctlCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "sysctl KEY=VALUE...",
		Short: "Set kernel parameters under /proc/sys (the chart's privileged init container)",
		Long: "Set kernel parameters under /proc/sys, like `sysctl -w`, so the chart's init container needs no\n" +
			"other image. KEY is dotted (net.ipv4.conf.all.src_valid_mark) or slashed\n" +
			"(net/ipv4/conf/eth0.100/rp_filter, for names that contain dots). All pairs are checked\n" +
			"before any is written. /proc/sys is read-only in unprivileged containers.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeSysctls(procSys, args, cmd.OutOrStdout())
		},
	}
}

// sysctlSetting is one validated KEY=VALUE: key as given (for messages),
// the path below the sysctl root, and the value to write.
type sysctlSetting struct {
	key, rel, value string
}

// sysctlComponent is one level of a sysctl name. Interface names may hold
// dots, '@' or ':' but never '/', and "." or ".." are refused separately:
// together that keeps every path inside the sysctl root.
var sysctlComponent = regexp.MustCompile(`^[A-Za-z0-9_.:@+-]+$`)

// parseSysctl checks one KEY=VALUE argument without touching the system.
func parseSysctl(arg string) (sysctlSetting, error) {
	key, value, ok := strings.Cut(arg, "=")
	if !ok {
		return sysctlSetting{}, fmt.Errorf("%q: want KEY=VALUE", arg)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return sysctlSetting{}, fmt.Errorf("%q: empty name", arg)
	}
	if value == "" || strings.ContainsAny(value, "\n\x00") {
		return sysctlSetting{}, fmt.Errorf("%s: value %q must be non-empty and on one line", key, value)
	}
	// As sysctl(8): a name holding '/' uses it as the separator, so dots
	// inside a component (VLAN interfaces) are kept.
	sep := "."
	if strings.Contains(key, "/") {
		sep = "/"
	}
	parts := strings.Split(key, sep)
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || !sysctlComponent.MatchString(p) {
			return sysctlSetting{}, fmt.Errorf("%s: invalid name component %q (letters, digits and _.:@+- only; no empty, . or ..)", key, p)
		}
	}
	return sysctlSetting{key: key, rel: filepath.Join(parts...), value: value}, nil
}

// writeSysctls validates every argument first, so a typo in the second
// pair does not leave the first one applied alone, then writes each value
// below root and prints "key = value" as read back from the kernel.
func writeSysctls(root string, args []string, out io.Writer) error {
	settings := make([]sysctlSetting, 0, len(args))
	for _, a := range args {
		s, err := parseSysctl(a)
		if err != nil {
			return fmt.Errorf("sysctl: %w", err)
		}
		settings = append(settings, s)
	}
	for _, s := range settings {
		path := filepath.Join(root, s.rel)
		if err := writeSysctl(path, s.value); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", s.key, s.value, err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("sysctl %s: read back %s: %w", s.key, path, err)
		}
		fmt.Fprintf(out, "%s = %s\n", s.key, strings.TrimSpace(string(got)))
	}
	return nil
}

// writeSysctl writes value to an existing sysctl file; it never creates
// one, so a misspelt name is an error rather than a stray file.
func writeSysctl(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no such kernel parameter (%s does not exist)", path)
	case errors.Is(err, fs.ErrPermission) || isReadOnlyFS(err):
		return fmt.Errorf("%w (/proc/sys is read-only in unprivileged containers: run this privileged)", err)
	case err != nil:
		return err
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		if isReadOnlyFS(err) || errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("write %s: %w (/proc/sys is read-only in unprivileged containers: run this privileged)", path, err)
		}
		return fmt.Errorf("write %s: %w (the kernel refused the value)", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
