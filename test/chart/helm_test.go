package chart

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// HelmVersion is the helm that test/tools/build.sh builds (HELM_VERSION
// there; TestToolVersionsAgree keeps them equal).
const HelmVersion = "v3.22.0"

// HelmDir is where test/tools/build.sh puts helm:
// $CROSSWIRE_TOOLS (default /var/cache/crosswire/tools)/helm-<version>.
func HelmDir() string {
	root := os.Getenv("CROSSWIRE_TOOLS")
	if root == "" {
		root = "/var/cache/crosswire/tools"
	}
	return filepath.Join(root, "helm-"+HelmVersion)
}

// repoRoot is the source tree's root, found from this file's path.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the source tree")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("source tree not found at %s (test binary built with -trimpath?): %v", root, err)
	}
	return root
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "crosswire") }

// helmPath returns the helm binary or fails the test with the command that
// builds it.
func helmPath(t testing.TB) string {
	t.Helper()
	p, err := findHelm(HelmDir(), filepath.Join(repoRoot(t), "test", "tools", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// findHelm returns dir/helm, or an error with the exact command (script,
// with CROSSWIRE_TOOLS when dir is not under the default root) that builds
// it.
func findHelm(dir, script string) (string, error) {
	p := filepath.Join(dir, "helm")
	if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
		return p, nil
	}
	cmd := script
	root, base := filepath.Split(filepath.Clean(dir))
	root = filepath.Clean(root)
	switch {
	case base != "helm-"+HelmVersion:
		cmd = fmt.Sprintf("CROSSWIRE_TOOLS=$(mktemp -d) %s and copy helm-%s/helm into %s", script, HelmVersion, dir)
	case root != "/var/cache/crosswire/tools":
		cmd = "CROSSWIRE_TOOLS=" + root + " " + script
	}
	return "", fmt.Errorf("%s is missing or not executable; build it once per machine (~1 min on 2 cores "+
		"once kube-apiserver, kubectl and etcd are built) with:\n\t%s", p, cmd)
}

// helm runs helm with its config, cache and data directories in a temporary
// directory, so tests never read or write the user's helm state. It returns
// stdout and, on failure, an error holding stderr.
func helm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, helmPath(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Namespace and release every test renders into.
const (
	testNamespace = "crosswire-system"
	testRelease   = "cw"
	fullName      = "cw-crosswire"
)

// manifests are the typed objects of one `helm template`.
type manifests struct {
	raw                string
	DaemonSet          *appsv1.DaemonSet
	ServiceAccount     *corev1.ServiceAccount
	ClusterRole        *rbacv1.ClusterRole
	ClusterRoleBinding *rbacv1.ClusterRoleBinding
	Role               *rbacv1.Role
	RoleBinding        *rbacv1.RoleBinding
	Policy             *admissionv1.ValidatingAdmissionPolicy
	PolicyBinding      *admissionv1.ValidatingAdmissionPolicyBinding
}

// render runs `helm template` on the chart with extra arguments (values
// files, --set) and parses the output strictly: an unknown field or kind
// fails the test.
func render(t testing.TB, args ...string) *manifests {
	t.Helper()
	out, err := helm(t, append([]string{"template", testRelease, chartDir(t), "--namespace", testNamespace}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parse(out)
	if err != nil {
		t.Fatalf("%v\n--- helm template output:\n%s", err, out)
	}
	return m
}

func parse(out string) (*manifests, error) {
	m := &manifests{raw: out}
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %q: %w", doc, err)
		}
		if tm.Kind == "" {
			continue // only comments
		}
		var into any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 DaemonSet":
			m.DaemonSet = &appsv1.DaemonSet{}
			into = m.DaemonSet
		case "v1 ServiceAccount":
			m.ServiceAccount = &corev1.ServiceAccount{}
			into = m.ServiceAccount
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			m.ClusterRole = &rbacv1.ClusterRole{}
			into = m.ClusterRole
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			m.ClusterRoleBinding = &rbacv1.ClusterRoleBinding{}
			into = m.ClusterRoleBinding
		case "rbac.authorization.k8s.io/v1 Role":
			m.Role = &rbacv1.Role{}
			into = m.Role
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			m.RoleBinding = &rbacv1.RoleBinding{}
			into = m.RoleBinding
		case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy":
			m.Policy = &admissionv1.ValidatingAdmissionPolicy{}
			into = m.Policy
		case "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding":
			m.PolicyBinding = &admissionv1.ValidatingAdmissionPolicyBinding{}
			into = m.PolicyBinding
		default:
			return nil, fmt.Errorf("unexpected object %s %s: add it to the chart tests", tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, into); err != nil {
			return nil, fmt.Errorf("%s: %w", tm.Kind, err)
		}
	}
	if m.DaemonSet == nil {
		return nil, errors.New("no DaemonSet rendered")
	}
	return m, nil
}

func (m *manifests) pod() *corev1.PodSpec { return &m.DaemonSet.Spec.Template.Spec }

func container(t testing.TB, cs []corev1.Container, name string) *corev1.Container {
	t.Helper()
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	t.Fatalf("no container %q in %v", name, cs)
	return nil
}

// binDir holds the binary crosswireBinary builds; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// crosswireBinary builds cmd/crosswire once per test binary, so the
// rendered flags are checked against the real flag sets.
var crosswireBinary = sync.OnceValues(func() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir, err := os.MkdirTemp("", "crosswire-chart-test-")
	if err != nil {
		return "", err
	}
	binDir = dir
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(dir, "crosswire")
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/crosswire")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/crosswire: %w\n%s", err, b)
	}
	return out, nil
})

// crosswireCommand is every container's command: the absolute path where
// the image (build/ociimage.BinaryPath) holds the binary.
var crosswireCommand = []string{"/usr/local/bin/crosswire"}

var commandLine = regexp.MustCompile(`(?m)^  ([a-z][a-z0-9-]*)\s{2,}\S`)

// binarySubcommands returns the commands `crosswire --help` lists.
func binarySubcommands(t testing.TB) []string {
	t.Helper()
	bin, err := crosswireBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("crosswire --help: %v\n%s", err, out)
	}
	_, cmds, ok := strings.Cut(string(out), "Available Commands:\n")
	if !ok {
		t.Fatalf("no command list in crosswire --help:\n%s", out)
	}
	cmds, _, _ = strings.Cut(cmds, "\n\n")
	var names []string
	for _, m := range commandLine.FindAllStringSubmatch(cmds, -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("no commands found in crosswire --help:\n%s", out)
	}
	return names
}

var flagLine = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)`)

// binaryFlags returns the flag names `crosswire <sub> --help` lists, without
// help itself.
func binaryFlags(t testing.TB, sub string) []string {
	t.Helper()
	bin, err := crosswireBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, sub, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("crosswire %s --help: %v\n%s", sub, err, out)
	}
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		if m[1] != "help" {
			names = append(names, m[1])
		}
	}
	if len(names) == 0 {
		t.Fatalf("no flags found in crosswire %s --help:\n%s", sub, out)
	}
	return names
}

// flagName is "mark" for "--mark=0x1000".
func flagName(arg string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
	return name
}

// onlyFlags keeps the arguments whose flag name is in names, in order.
func onlyFlags(args, names []string) []string {
	var kept []string
	for _, a := range args {
		if strings.HasPrefix(a, "--") && slices.Contains(names, flagName(a)) {
			kept = append(kept, a)
		}
	}
	return kept
}
