package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// unexpectedAgentErrors returns the lines of an agent's log (zap JSON) at
// level error or above whose message contains none of allowed, and any Go
// panic or fatal error. A test that expects an error names it in allowed,
// so a new one fails the test instead of scrolling by.
func unexpectedAgentErrors(log string, allowed ...string) []string {
	var bad []string
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
			bad = append(bad, line)
			continue
		}
		var entry struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &entry) != nil {
			continue // not a log entry (a wrapped panic trace line, output of a tool)
		}
		switch entry.Level {
		case "error", "dpanic", "panic", "fatal":
		default:
			continue
		}
		expected := false
		for _, a := range allowed {
			expected = expected || strings.Contains(entry.Msg, a)
		}
		if !expected {
			bad = append(bad, line)
		}
	}
	return bad
}

func TestUnexpectedAgentErrors(t *testing.T) {
	log := strings.Join([]string{
		`{"level":"info","msg":"agent started"}`,
		`{"level":"error","msg":"patch failed: conflict"}`,
		`{"level":"warn","msg":"node rejected"}`,
		`{"level":"error","msg":"tunnel write failed"}`,
		`panic: runtime error: index out of range`,
		`goroutine 1 [running]:`,
	}, "\n")
	got := unexpectedAgentErrors(log, "patch failed")
	if len(got) != 2 || !strings.Contains(got[0], "tunnel write failed") || !strings.HasPrefix(got[1], "panic:") {
		t.Errorf("unexpected errors %q; want the tunnel error and the panic", got)
	}
	if got := unexpectedAgentErrors(log, "patch failed", "tunnel write"); len(got) != 1 {
		t.Errorf("with both allowed: %q, want only the panic", got)
	}
}
