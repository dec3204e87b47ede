package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocsLinksAndNoIssueNumbers: every relative link in the docs names a
// file of the tree, and no doc cites an issue number, which means nothing
// to a reader of the repository.
func TestDocsLinksAndNoIssueNumbers(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)#\s]+)[^)]*\)`)
	issue := regexp.MustCompile(`(?i)\bissue\s*#?\d+|\s#\d+\b`)
	for _, rel := range docFiles(t) {
		doc := readDoc(t, rel)
		for _, m := range link.FindAllStringSubmatch(doc, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path := filepath.Join(repoRoot(t), filepath.Dir(rel), target)
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", rel, target)
			}
		}
		for _, m := range issue.FindAllString(doc, -1) {
			t.Errorf("%s cites %q", rel, strings.TrimSpace(m))
		}
	}
}
