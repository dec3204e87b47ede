package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/crosswire/crosswire/agentstatus"
)

// statusSamples are the `crosswire status` outputs the docs show. Each is
// rendered the way an operator sees it: the agent's status handler on a
// unix socket, read and printed by runStatus.
var statusSamples = []struct {
	golden  string // under testdata/
	source  func(*testing.T) *agentstatus.Source
	healthy bool // exit 0
}{
	{"status-healthy.txt", healthySample, true},
	{"status-unhealthy.txt", unhealthySample, false},
	{"status-pq.txt", pqSample, false},
}

// TestDocsStatusSamples renders every sample, compares it with its golden
// file, and compares every doc block that embeds a golden file with it.
// `go test ./cmd/crosswire -run TestDocsStatusSamples -update` rewrites
// both from the code.
func TestDocsStatusSamples(t *testing.T) {
	golden := map[string]string{}
	for _, s := range statusSamples {
		path := filepath.Join(socketDir(t), "status.sock")
		l, err := agentstatus.ListenStatusSocket(path)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- agentstatus.Serve(ctx, l, agentstatus.StatusHandler(s.source(t))) }()
		var out bytes.Buffer
		err = runStatus(context.Background(), &out, path, "text")
		cancel()
		<-done
		if s.healthy != (err == nil) || (err != nil && !errors.Is(err, errUnhealthy)) {
			t.Errorf("%s: runStatus = %v, want healthy %t", s.golden, err, s.healthy)
		}
		file := filepath.Join("testdata", s.golden)
		if *update {
			if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if out.String() != string(want) {
			t.Errorf("%s differs from what `crosswire status` prints now (run with -update):\ngot:\n%s\nwant:\n%s", file, out.String(), want)
		}
		golden["cmd/crosswire/testdata/"+s.golden] = out.String()
	}

	embedded := map[string]bool{}
	for _, rel := range docFiles(t) {
		doc := readDoc(t, rel)
		fixed := generatedBlock.ReplaceAllStringFunc(doc, func(block string) string {
			m := generatedBlock.FindStringSubmatch(block)
			src, body := m[1], m[2]
			want, ok := golden[src]
			if !ok {
				t.Errorf("%s embeds %s, which no test generates", rel, src)
				return block
			}
			embedded[src] = true
			if body != want {
				t.Errorf("%s: the sample from %s is out of date (run go test ./cmd/crosswire -run TestDocsStatusSamples -update)", rel, src)
			}
			// Rebuilt, not strings.Replace(block, body, want): an empty
			// body would put the sample before the marker, outside the
			// fence, once per -update.
			return "<!-- generated: " + src + " -->\n```\n" + want + "```\n"
		})
		if *update && fixed != doc {
			if err := os.WriteFile(filepath.Join(repoRoot(t), rel), []byte(fixed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for src := range golden {
		if !embedded[src] {
			t.Errorf("no doc embeds %s", src)
		}
	}
}

// generatedBlock is a fenced block preceded by a marker naming the golden
// file it shows: <!-- generated: path -->.
var generatedBlock = regexp.MustCompile("(?s)<!-- generated: (\\S+) -->\n```\n(.*?)```\n")

// socketDir is a short temporary directory: a unix socket path must fit in
// 108 bytes, which t.TempDir() under a long test name may not.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cwdoc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// TestDocsStatusJSONFields: the field list of `crosswire status -o json` in
// docs/operations.md names exactly the report's JSON fields.
func TestDocsStatusJSONFields(t *testing.T) {
	doc := readDoc(t, "docs/operations.md")
	start := strings.Index(doc, "`-o json` prints")
	end := strings.Index(doc, "Fields are only")
	if start < 0 || end < start {
		t.Fatal("docs/operations.md: no JSON field list between \"`-o json` prints\" and \"Fields are only ever added\"")
	}
	list := doc[start:end]
	list = list[strings.Index(list, "(`agentstatus.Report`)")+len("(`agentstatus.Report`)"):]
	documented := regexp.MustCompile(`[a-z][a-z0-9_]*`).FindAllString(list, -1)
	want := jsonFields(reflect.TypeFor[agentstatus.Report]())
	r := unhealthySample(t).Report()
	for k := range r.Sets {
		want = append(want, k)
	}
	for k := range r.MarkCounters {
		want = append(want, k)
	}
	for k := range r.DropCounters {
		want = append(want, k)
	}
	slices.Sort(documented)
	slices.Sort(want)
	documented, want = slices.Compact(documented), slices.Compact(want)
	if !slices.Equal(documented, want) {
		t.Errorf("docs/operations.md's JSON fields\n  %v\nthe report's\n  %v", documented, want)
	}
}

// jsonFields lists the JSON names of a struct's fields and of the structs
// it holds, recursively.
func jsonFields(typ reflect.Type) []string {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || typ.PkgPath() == "time" {
		return nil
	}
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, name)
		out = append(out, jsonFields(f.Type)...)
	}
	return out
}
