package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// update rewrites the golden files, and the documentation blocks that
// embed them, from what the code renders today.
var update = flag.Bool("update", false, "rewrite testdata golden files and the doc samples that embed them")

// repoRoot is the source tree's root, found from this file's path (the
// test binary is never built with -trimpath here).
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the source tree")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// readDoc returns a file of the source tree, by path from its root.
func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docFiles are the files whose claims the doc tests check.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := []string{"README.md"}
	for _, f := range files {
		out = append(out, filepath.Join("docs", filepath.Base(f)))
	}
	return out
}

// mdTable returns the rows of the first Markdown table in doc whose header
// row starts with the given cells, each row as its trimmed cells.
func mdTable(t *testing.T, doc string, header ...string) [][]string {
	t.Helper()
	var rows [][]string
	in := false
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		cells := splitRow(line)
		if !in {
			if len(cells) >= len(header) && equalPrefix(cells, header) {
				in = true
			}
			continue
		}
		if strings.Trim(strings.Join(cells, ""), "-: ") == "" {
			continue // the separator row
		}
		rows = append(rows, cells)
	}
	if !in {
		t.Fatalf("no table with header %q", header)
	}
	return rows
}

func splitRow(line string) []string {
	parts := strings.Split(strings.Trim(line, "|"), "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func equalPrefix(cells, header []string) bool {
	for i, h := range header {
		if cells[i] != h {
			return false
		}
	}
	return true
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

// codeSpans returns the back-quoted words of a table cell.
func codeSpans(cell string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}
