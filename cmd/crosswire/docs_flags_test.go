package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestDocsAgentFlags: the flag table of docs/operations.md lists every
// agent flag, hidden ones included, with the default the binary has.
func TestDocsAgentFlags(t *testing.T) {
	t.Setenv("NODE_NAME", "node-from-env")
	fs := newAgentCommand().Flags()
	documented := map[string]bool{}
	for _, row := range mdTable(t, readDoc(t, "docs/operations.md"), "flag", "default", "meaning") {
		spans := codeSpans(row[0])
		if len(spans) == 0 || !strings.HasPrefix(spans[0], "--") {
			t.Errorf("flag table row %q: no `--flag` in the first cell", row[0])
			continue
		}
		name := strings.TrimPrefix(spans[0], "--")
		documented[name] = true
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("docs/operations.md documents --%s, which crosswire agent does not have", name)
			continue
		}
		if want, ok := documentedDefault(row[1]); !ok {
			t.Errorf("--%s: default cell %q is neither `value` nor —", name, row[1])
		} else if !sameDefault(f, want) {
			t.Errorf("--%s: docs/operations.md says the default is %q, the binary's is %q", name, want, f.DefValue)
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !documented[f.Name] {
			t.Errorf("crosswire agent --%s is missing from docs/operations.md's flag table", f.Name)
		}
	})
}

// documentedDefault reads a default cell: `value`, `$ENV` (the variable's
// value) or — (empty).
func documentedDefault(cell string) (string, bool) {
	if cell == "—" {
		return "", true
	}
	spans := codeSpans(cell)
	if len(spans) != 1 {
		return "", false
	}
	if env, ok := strings.CutPrefix(spans[0], "$"); ok {
		return os.Getenv(env), true
	}
	return spans[0], true
}

// sameDefault compares a documented default with the flag's: durations by
// value (the docs write 5m where pflag prints 5m0s), the rest as text.
func sameDefault(f *pflag.Flag, doc string) bool {
	if f.Value.Type() == "duration" {
		a, errA := time.ParseDuration(doc)
		b, errB := time.ParseDuration(f.DefValue)
		return errA == nil && errB == nil && a == b
	}
	return doc == f.DefValue
}

// TestFlagUsageHasNoBackQuotes: pflag takes a back-quoted word in a usage
// string as the flag's value name, so `crosswire agent --help` would print
// "--socket-dir wg show". Every command's usage strings must do without.
func TestFlagUsageHasNoBackQuotes(t *testing.T) {
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				name, _ := pflag.UnquoteUsage(f)
				t.Errorf("%s --%s: usage has back quotes, so --help shows %q as its value name", c.CommandPath(), f.Name, name)
			}
		})
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(newRootCommand())
}
