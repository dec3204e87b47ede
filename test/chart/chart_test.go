package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/test/cwcluster"
)

// defaultAgentArgs is what `crosswire agent` gets with the chart's default
// values: every modelled flag, explicitly, equal to the binary's defaults
// (docs/operations.md).
var defaultAgentArgs = append([]string{"agent"}, cwcluster.ChartFlags(nil)...)

// customAgentArgs is the same for testdata/custom.yaml, where every value
// differs from its default.
var customAgentArgs = []string{
	"agent",
	"--state-dir=/opt/crosswire/state",
	"--socket-dir=/run/wireguard",
	"--interface=cw-tun7",
	"--mark=0x10000",
	"--mask=0x30000",
	"--table=7070",
	"--rule-priority=900",
	"--nft-table=cw_custom",
	"--log-level=debug",
	"--listen-port=41820",
	"--wg-fwmark=0x40000",
	"--mtu=1380",
	"--strict=true",
	"--cluster-cidrs=10.244.0.0/16,fd00:10:244::/56",
	"--resync-interval=1m30s",
	"--keepalive=25",
	"--on-demand-peers=true",
	"--peer-idle-timeout=2m30s",
	"--post-quantum=required",
	"--pq-port=41821",
	"--pq-rotate=45s",
	"--metrics-port=19763",
	"--metrics-per-peer=true",
	"--status-socket=/run/crosswire/status.sock",
	"--kubeconfig=/etc/crosswire/kubeconfig",
}

func customValues(t testing.TB) string {
	return filepath.Join(repoRoot(t), "test", "chart", "testdata", "custom.yaml")
}

func TestMissingHelmNamesBuildCommand(t *testing.T) {
	script := "/src/test/tools/build.sh"
	for dir, want := range map[string]string{
		"/nonexistent/tools/helm-" + HelmVersion: "\n\tCROSSWIRE_TOOLS=/nonexistent/tools " + script,
		"/nonexistent/elsewhere":                 "copy helm-" + HelmVersion + "/helm into /nonexistent/elsewhere",
	} {
		_, err := findHelm(dir, script)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir+"/helm is missing") {
			t.Errorf("findHelm(%s) = %v, want an error naming %q", dir, err, want)
		}
	}
}

func TestToolVersionsAgree(t *testing.T) {
	root := repoRoot(t)
	script, err := os.ReadFile(filepath.Join(root, "test", "tools", "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^HELM_VERSION=` + regexp.QuoteMeta(HelmVersion) + `$`).Match(script) {
		t.Errorf("test/tools/build.sh does not set HELM_VERSION=%s", HelmVersion)
	}
	mod, err := os.ReadFile(filepath.Join(root, "test", "tools", "helm", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "require helm.sh/helm/v3 "+HelmVersion+"\n") {
		t.Errorf("test/tools/helm/go.mod does not require helm.sh/helm/v3 %s", HelmVersion)
	}
	out, err := helm(t, "version", "--short")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != HelmVersion {
		t.Errorf("helm version --short = %q, want %s (stale build? rerun build.sh)", out, HelmVersion)
	}
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"defaults strict", []string{"--strict"}},
		{"custom strict", []string{"--strict", "-f", customValues(t)}},
		{"cleanup strict", []string{"--strict", "--set", "cleanup.enabled=true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := helm(t, append([]string{"lint", chartDir(t)}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "0 chart(s) failed") || strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Fatalf("helm lint:\n%s", out)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	m := render(t)
	ds := m.DaemonSet
	pod := m.pod()

	if ds.Name != fullName || ds.Namespace != testNamespace {
		t.Errorf("DaemonSet %s/%s, want %s/%s", ds.Namespace, ds.Name, testNamespace, fullName)
	}
	if !pod.HostNetwork {
		t.Error("hostNetwork is off: the agent must run in the node's network namespace")
	}
	if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q", pod.DNSPolicy)
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", pod.PriorityClassName)
	}
	if !slices.Equal(pod.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}) {
		t.Errorf("tolerations %+v, want exactly [{operator: Exists}]", pod.Tolerations)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g > 30 {
		t.Errorf("terminationGracePeriodSeconds %v, want short", g)
	}
	if pod.ServiceAccountName != fullName || pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Errorf("serviceAccountName %q, automount %v", pod.ServiceAccountName, pod.AutomountServiceAccountToken)
	}
	if pod.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector %v", pod.NodeSelector)
	}
	us := ds.Spec.UpdateStrategy
	if us.Type != appsv1.RollingUpdateDaemonSetStrategyType || us.RollingUpdate == nil ||
		us.RollingUpdate.MaxUnavailable == nil || *us.RollingUpdate.MaxUnavailable != intstr.FromInt32(1) {
		t.Errorf("updateStrategy %+v, want RollingUpdate maxUnavailable 1", us)
	}

	agent := container(t, pod.Containers, "agent")
	if len(pod.Containers) != 1 {
		t.Errorf("%d containers, want only the agent", len(pod.Containers))
	}
	if agent.Image != "ghcr.io/crosswire/crosswire:0.1.0" || agent.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %q pull %q: want the appVersion tag", agent.Image, agent.ImagePullPolicy)
	}
	if !slices.Equal(agent.Command, crosswireCommand) || !slices.Equal(agent.Args, defaultAgentArgs) {
		t.Errorf("command %q args:\n  %q\nwant\n  %q", agent.Command, agent.Args, defaultAgentArgs)
	}
	want := corev1.EnvVar{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}
	if len(agent.Env) != 1 || agent.Env[0].Name != want.Name || agent.Env[0].ValueFrom == nil ||
		agent.Env[0].ValueFrom.FieldRef == nil || agent.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("env %+v, want only NODE_NAME from spec.nodeName", agent.Env)
	}

	// Unprivileged with NET_ADMIN only; the privileged init container sets
	// the one sysctl the agent cannot write through read-only /proc/sys.
	sc := agent.SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("agent securityContext %+v", sc)
	}
	if len(pod.InitContainers) != 1 {
		t.Fatalf("init containers %+v, want the sysctl one", pod.InitContainers)
	}
	sysctl := container(t, pod.InitContainers, "sysctl")
	if !slices.Equal(sysctl.Command, crosswireCommand) || !slices.Equal(sysctl.Args, []string{"sysctl", "net.ipv4.conf.all.src_valid_mark=1"}) ||
		sysctl.Image != agent.Image || sysctl.ImagePullPolicy != agent.ImagePullPolicy ||
		sysctl.SecurityContext == nil || sysctl.SecurityContext.Privileged == nil || !*sysctl.SecurityContext.Privileged {
		t.Errorf("sysctl init container %+v: want `crosswire sysctl` from the agent's image, privileged", sysctl)
	}

	checkHostPaths(t, m, map[string]string{
		"/var/lib/crosswire": "/var/lib/crosswire",
		"/var/run/wireguard": "/var/run/wireguard",
		"/var/run/crosswire": "/var/run/crosswire",
		"/dev/net/tun":       "/dev/net/tun",
	})
	checkProbes(t, agent, 9763)
	checkStartupProbe(t, agent, 2, 1, 300)
	checkPorts(t, agent, 51820, 0, 9763)
	if agent.Resources.Requests.Cpu().IsZero() || agent.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want requests and a memory limit", agent.Resources)
	}

	checkRBAC(t, m, fullName)
	checkAdmissionPolicy(t, m, fullName)
}

func TestCustomValues(t *testing.T) {
	m := render(t, "-f", customValues(t))
	pod := m.pod()
	agent := container(t, pod.Containers, "agent")
	if !slices.Equal(agent.Args, customAgentArgs) {
		t.Errorf("args:\n  %q\nwant\n  %q", agent.Args, customAgentArgs)
	}
	if agent.Image != "registry.example.com/net/crosswire:v9.8.7" || agent.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %q pull %q", agent.Image, agent.ImagePullPolicy)
	}
	if !slices.Equal(pod.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "regcred"}}) {
		t.Errorf("imagePullSecrets %v", pod.ImagePullSecrets)
	}
	// privileged: the agent sets the sysctl itself; no init container.
	sc := agent.SecurityContext
	if sc == nil || sc.Privileged == nil || !*sc.Privileged || sc.AllowPrivilegeEscalation == nil || !*sc.AllowPrivilegeEscalation ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) || len(sc.Capabilities.Drop) != 0 {
		t.Errorf("securityContext %+v", sc)
	}
	if len(pod.InitContainers) != 0 {
		t.Errorf("init containers %+v, want none when privileged", pod.InitContainers)
	}
	if pod.PriorityClassName != "" {
		t.Errorf("priorityClassName %q, want none", pod.PriorityClassName)
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g != 3 {
		t.Errorf("terminationGracePeriodSeconds %v", g)
	}
	if mu := m.DaemonSet.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable; mu == nil || *mu != intstr.FromString("25%") {
		t.Errorf("maxUnavailable %v", mu)
	}
	wantTol := []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	if !slices.Equal(pod.Tolerations, wantTol) {
		t.Errorf("tolerations %+v, want %+v", pod.Tolerations, wantTol)
	}
	if len(pod.NodeSelector) != 2 || pod.NodeSelector["example.com/encrypted"] != "true" {
		t.Errorf("nodeSelector %v", pod.NodeSelector)
	}
	tmpl := m.DaemonSet.Spec.Template
	if tmpl.Annotations["prometheus.io/scrape"] != "true" || tmpl.Labels["team"] != "net" {
		t.Errorf("pod annotations %v labels %v", tmpl.Annotations, tmpl.Labels)
	}
	if got := agent.Resources.Limits.Cpu().String(); got != "1" {
		t.Errorf("cpu limit %s", got)
	}
	if got := agent.Resources.Requests.Memory().String(); got != "128Mi" {
		t.Errorf("memory request %s", got)
	}
	checkHostPaths(t, m, map[string]string{
		"/opt/crosswire/state": "/opt/crosswire/state",
		"/run/wireguard":       "/run/wireguard",
		"/run/crosswire":       "/run/crosswire",
		"/dev/net/tun":         "/dev/net/tun",
	})
	checkProbes(t, agent, 19763)
	checkStartupProbe(t, agent, 0, 2, 90)
	checkPorts(t, agent, 41820, 41821, 19763)
	if pod.ServiceAccountName != "cw-agent" || m.ServiceAccount.Name != "cw-agent" ||
		m.ServiceAccount.Annotations["example.com/owner"] != "network-team" {
		t.Errorf("service account %q / %+v", pod.ServiceAccountName, m.ServiceAccount.ObjectMeta)
	}
	checkRBAC(t, m, "cw-agent")
	if m.Policy != nil || m.PolicyBinding != nil {
		t.Errorf("admissionPolicy.enabled=false rendered policy %v binding %v", m.Policy != nil, m.PolicyBinding != nil)
	}
	// The policy, when on, names the ServiceAccount the agent runs as.
	checkAdmissionPolicy(t, render(t, "-f", customValues(t), "--set", "admissionPolicy.enabled=true"), "cw-agent")
}

// TestMetricsPerPeer: per-peer series are off unless metrics.perPeer asks
// for them (3N² series across a cluster), and the value changes that one
// flag only.
func TestMetricsPerPeer(t *testing.T) {
	def := container(t, render(t).pod().Containers, "agent").Args
	on := container(t, render(t, "--set", "metrics.perPeer=true").pod().Containers, "agent").Args
	if !slices.Contains(def, "--metrics-per-peer=false") {
		t.Fatalf("default args %q lack --metrics-per-peer=false", def)
	}
	want := slices.Clone(def)
	want[slices.Index(want, "--metrics-per-peer=false")] = "--metrics-per-peer=true"
	if !slices.Equal(on, want) {
		t.Errorf("metrics.perPeer=true: args\n  %q\nwant\n  %q", on, want)
	}
}

// TestFlagsKnownToBinary: every flag the chart renders exists in the real
// binary's flag set (a renamed flag would otherwise crash-loop every node).
func TestFlagsKnownToBinary(t *testing.T) {
	agentFlags := binaryFlags(t, "agent")
	cleanupFlags := binaryFlags(t, "cleanup")
	for _, vals := range [][]string{nil, {"-f", customValues(t)}} {
		m := render(t, vals...)
		for _, a := range container(t, m.pod().Containers, "agent").Args[1:] {
			if !slices.Contains(agentFlags, flagName(a)) {
				t.Errorf("chart passes %s, but `crosswire agent` has no such flag (has %v)", a, agentFlags)
			}
		}
		c := render(t, append(vals, "--set", "cleanup.enabled=true")...)
		for _, a := range container(t, c.pod().InitContainers, "cleanup").Args[1:] {
			if !slices.Contains(cleanupFlags, flagName(a)) {
				t.Errorf("cleanup mode passes %s, but `crosswire cleanup` has no such flag (has %v)", a, cleanupFlags)
			}
		}
	}
}

// TestCleanupMode: cleanup mode runs `crosswire cleanup` with exactly the
// agent's datapath flags (every flag cleanup has, with the agent's value),
// so it removes what the agent created and nothing else; a pause container
// keeps a cleaned node's pod ready for `kubectl rollout status`.
func TestCleanupMode(t *testing.T) {
	cleanupFlags := binaryFlags(t, "cleanup")
	for name, vals := range map[string][]string{"defaults": nil, "custom": {"-f", customValues(t)}} {
		t.Run(name, func(t *testing.T) {
			agentArgs := container(t, render(t, vals...).pod().Containers, "agent").Args
			m := render(t, append(vals, "--set", "cleanup.enabled=true")...)
			pod := m.pod()

			cl := container(t, pod.InitContainers, "cleanup")
			if len(pod.InitContainers) != 1 {
				t.Errorf("init containers %+v, want only cleanup", pod.InitContainers)
			}
			want := append([]string{"cleanup"}, onlyFlags(agentArgs, cleanupFlags)...)
			if !slices.Equal(cl.Args, want) || !slices.Equal(cl.Command, crosswireCommand) {
				t.Errorf("cleanup command %q args\n  %q\nwant\n  %q", cl.Command, cl.Args, want)
			}
			// Every flag cleanup knows is passed: one left out would fall
			// back to its default instead of the agent's value.
			for _, f := range cleanupFlags {
				if !slices.ContainsFunc(cl.Args, func(a string) bool { return strings.HasPrefix(a, "--") && flagName(a) == f }) {
					t.Errorf("cleanup mode does not pass --%s: it would fall back to the default, not the agent's value", f)
				}
			}
			if cl.SecurityContext == nil || cl.SecurityContext.Capabilities == nil ||
				!slices.Contains(cl.SecurityContext.Capabilities.Add, "NET_ADMIN") {
				t.Errorf("cleanup securityContext %+v: needs NET_ADMIN", cl.SecurityContext)
			}
			mounts := map[string]bool{}
			for _, vm := range cl.VolumeMounts {
				mounts[vm.Name] = true
			}
			if !mounts["wireguard-sockets"] {
				t.Errorf("cleanup mounts %+v: needs the UAPI socket dir to remove the socket", cl.VolumeMounts)
			}

			// The keep-alive container is `crosswire pause` from the same
			// image, as uid 65535 with nothing it does not need.
			pause := container(t, pod.Containers, "cleaned")
			if len(pod.Containers) != 1 || pause.Image != cl.Image || pause.ImagePullPolicy != cl.ImagePullPolicy ||
				!slices.Equal(pause.Command, crosswireCommand) || !slices.Equal(pause.Args, []string{"pause"}) {
				t.Errorf("containers %+v, want only `crosswire pause` from the cleanup image %s", pod.Containers, cl.Image)
			}
			if psc := pause.SecurityContext; psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65535 ||
				psc.RunAsGroup == nil || *psc.RunAsGroup != 65535 || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
				psc.AllowPrivilegeEscalation == nil || *psc.AllowPrivilegeEscalation ||
				psc.ReadOnlyRootFilesystem == nil || !*psc.ReadOnlyRootFilesystem || psc.Privileged != nil && *psc.Privileged ||
				psc.Capabilities == nil || !slices.Equal(psc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(psc.Capabilities.Add) != 0 {
				t.Errorf("pause securityContext %+v, want uid/gid 65535, non-root, no capabilities, read-only root", psc)
			}
			if len(pause.VolumeMounts) != 0 {
				t.Errorf("pause mounts %+v, want none", pause.VolumeMounts)
			}
			if mu := m.DaemonSet.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable; mu == nil || *mu != intstr.FromString("100%") {
				t.Errorf("cleanup maxUnavailable %v, want 100%%", mu)
			}
			if !pod.HostNetwork || m.DaemonSet.Spec.Template.Annotations["crosswire.dev/mode"] != "cleanup" {
				t.Errorf("hostNetwork %v, annotations %v", pod.HostNetwork, m.DaemonSet.Spec.Template.Annotations)
			}
			// Same selector and tolerations: the upgrade replaces the agent
			// pod on exactly the nodes it ran on.
			base := render(t, vals...)
			if !slices.Equal(pod.Tolerations, base.pod().Tolerations) ||
				m.DaemonSet.Spec.Selector.String() != base.DaemonSet.Spec.Selector.String() {
				t.Errorf("cleanup tolerations/selector differ from the agent's")
			}
		})
	}
}

// TestSchemaRejects: values.schema.json turns bad values into a helm error
// naming the value, before anything reaches a cluster.
func TestSchemaRejects(t *testing.T) {
	dir := t.TempDir()
	unquotedMark := filepath.Join(dir, "unquoted-mark.yaml")
	if err := os.WriteFile(unquotedMark, []byte("mark: 0x1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--set", "listenPort=70000"}, []string{"/listenPort", "maximum"}},
		{[]string{"--set", "listenPort=0"}, []string{"/listenPort", "minimum"}},
		{[]string{"--set", "logLevel=loud"}, []string{"/logLevel", "'debug', 'info', 'warn', 'error'"}},
		{[]string{"--set", "metrics.port=65536"}, []string{"/metrics/port", "maximum"}},
		{[]string{"--set", "metrics.perPeer=maybe"}, []string{"/metrics/perPeer", "boolean"}},
		{[]string{"-f", unquotedMark}, []string{"/mark", "string"}},
		{[]string{"--set", "mask=0x1g"}, []string{"/mask", "does not match pattern"}},
		{[]string{"--set", "wgFwmark=0x123456789"}, []string{"/wgFwmark", "pattern"}},
		{[]string{"--set", "mtu=500"}, []string{"/mtu"}},
		{[]string{"--set", "mtu=70000"}, []string{"/mtu"}},
		{[]string{"--set", "table=254"}, []string{"/table"}},
		{[]string{"--set", "rulePriority=32766"}, []string{"/rulePriority", "maximum"}},
		{[]string{"--set", "resyncInterval=soon"}, []string{"/resyncInterval", "pattern"}},
		{[]string{"--set", "keepalive=-1"}, []string{"/keepalive", "minimum"}},
		{[]string{"--set", "interface=much-too-long-name"}, []string{"/interface", "pattern"}},
		{[]string{"--set", "strict=maybe"}, []string{"/strict", "boolean"}},
		{[]string{"--set", "onDemandPeers=maybe"}, []string{"/onDemandPeers", "boolean"}},
		{[]string{"--set", "peerIdleTimeout=later"}, []string{"/peerIdleTimeout", "pattern"}},
		{[]string{"--set", "postQuantum.mode=maybe"}, []string{"/postQuantum/mode", "'off', 'on', 'required'"}},
		{[]string{"--set", "postQuantum.port=0"}, []string{"/postQuantum/port", "minimum"}},
		{[]string{"--set", "postQuantum.rotate=often"}, []string{"/postQuantum/rotate", "pattern"}},
		{[]string{"--set", "image.pullPolicy=Sometimes"}, []string{"/image/pullPolicy"}},
		{[]string{"--set", "image.digest=sha256:abc"}, []string{"/image/digest", "pattern"}},
		{[]string{"--set", "image.digest=" + strings.Repeat("a", 64)}, []string{"/image/digest", "pattern"}},
		{[]string{"--set", "image.repository=ghcr.io/crosswire/crosswire:0.1.0"}, []string{"/image/repository", "pattern"}},
		{[]string{"--set", "image.repository=ghcr.io/crosswire/crosswire@sha256:" + strings.Repeat("a", 64)}, []string{"/image/repository", "pattern"}},
		{[]string{"--set", "image.tag=v1 beta"}, []string{"/image/tag", "pattern"}},
		// The images the chart no longer uses: an old values file fails
		// loudly instead of being ignored.
		{[]string{"--set", "sysctlInit.image.repository=busybox"}, []string{"image"}},
		{[]string{"--set", "cleanup.pauseImage.tag=3.10"}, []string{"pauseImage"}},
		{[]string{"--set", "startupProbe.periodSeconds=0"}, []string{"/startupProbe/periodSeconds", "minimum"}},
		{[]string{"--set", "hostPaths.stateDir=relative/dir"}, []string{"/hostPaths/stateDir", "pattern"}},
		{[]string{"--set", "lisenPort=51820"}, []string{"lisenPort"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := helm(t, append([]string{"template", testRelease, chartDir(t)}, tc.args...)...)
			if err == nil {
				t.Fatal("helm template succeeded, want a schema error")
			}
			msg := err.Error()
			for _, w := range append([]string{"values don't meet the specifications of the schema"}, tc.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
	// The edges are accepted.
	render(t, "--set", "mtu=576", "--set", "listenPort=65535", "--set", "mark=0xffffffff", "--set", "mask=0xFFFFFFFF",
		"--set", "table=256", "--set", "rulePriority=32765", "--set", "resyncInterval=1h2m3.5s",
		"--set", "image.repository=localhost:5000/crosswire", "--set", "image.digest=sha256:"+strings.Repeat("0", 64))
}

func checkHostPaths(t *testing.T, m *manifests, want map[string]string) {
	t.Helper()
	pod := m.pod()
	agent := container(t, pod.Containers, "agent")
	vols := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a hostPath", v.Name)
			continue
		}
		vols[v.Name] = v.HostPath
	}
	got := map[string]string{}
	for _, vm := range agent.VolumeMounts {
		hp := vols[vm.Name]
		if hp == nil {
			t.Errorf("mount %s has no hostPath volume", vm.Name)
			continue
		}
		if vm.ReadOnly {
			t.Errorf("mount %s is read-only", vm.Name)
		}
		wantType := corev1.HostPathDirectoryOrCreate
		if hp.Path == "/dev/net/tun" {
			wantType = corev1.HostPathCharDev
		}
		if hp.Type == nil || *hp.Type != wantType {
			t.Errorf("hostPath %s type %v, want %s", hp.Path, hp.Type, wantType)
		}
		got[hp.Path] = vm.MountPath
	}
	if len(got) != len(want) {
		t.Errorf("host paths %v, want %v", got, want)
	}
	for host, mount := range want {
		if got[host] != mount {
			t.Errorf("host path %s mounted at %q, want %q (all: %v)", host, got[host], mount, got)
		}
	}
}

func checkProbes(t *testing.T, c *corev1.Container, port int32) {
	t.Helper()
	for name, tc := range map[string]struct {
		p    *corev1.Probe
		path string
	}{"readiness": {c.ReadinessProbe, "/readyz"}, "liveness": {c.LivenessProbe, "/healthz"}} {
		if tc.p == nil || tc.p.HTTPGet == nil {
			t.Errorf("%s probe %+v, want HTTP", name, tc.p)
			continue
		}
		g := tc.p.HTTPGet
		if g.Path != tc.path || g.Port != intstr.FromString("metrics") || g.Host != "127.0.0.1" {
			t.Errorf("%s probe %+v, want GET 127.0.0.1:metrics%s", name, g, tc.path)
		}
	}
	for _, p := range c.Ports {
		if p.Name == "metrics" && p.ContainerPort != port {
			t.Errorf("metrics port %d, want %d", p.ContainerPort, port)
		}
	}
}

// checkStartupProbe: the startup probe asks /readyz, as readiness does, so
// neither readiness nor liveness is checked before the first apply.
func checkStartupProbe(t *testing.T, c *corev1.Container, delay, period, threshold int32) {
	t.Helper()
	p := c.StartupProbe
	if p == nil || p.HTTPGet == nil {
		t.Fatalf("startup probe %+v, want HTTP", p)
	}
	if g := p.HTTPGet; g.Path != "/readyz" || g.Port != intstr.FromString("metrics") || g.Host != "127.0.0.1" {
		t.Errorf("startup probe %+v, want GET 127.0.0.1:metrics/readyz", g)
	}
	if p.InitialDelaySeconds != delay || p.PeriodSeconds != period || p.FailureThreshold != threshold {
		t.Errorf("startup probe delay %d period %d threshold %d, want %d %d %d",
			p.InitialDelaySeconds, p.PeriodSeconds, p.FailureThreshold, delay, period, threshold)
	}
}

// checkPorts: pq is the post-quantum exchange's port, 0 when it is off.
func checkPorts(t *testing.T, c *corev1.Container, wg, pq, metrics int32) {
	t.Helper()
	want := []corev1.ContainerPort{{Name: "wireguard", ContainerPort: wg, Protocol: corev1.ProtocolUDP}}
	if pq != 0 {
		want = append(want, corev1.ContainerPort{Name: "pq-exchange", ContainerPort: pq, Protocol: corev1.ProtocolUDP})
	}
	want = append(want, corev1.ContainerPort{Name: "metrics", ContainerPort: metrics, Protocol: corev1.ProtocolTCP})
	if !slices.Equal(c.Ports, want) {
		t.Errorf("ports %+v, want %+v", c.Ports, want)
	}
}

// checkRBAC: the ClusterRole and the Role in "default" are exactly
// controller.RBACRules, bound to the agent's ServiceAccount.
func checkRBAC(t *testing.T, m *manifests, sa string) {
	t.Helper()
	if m.ClusterRole == nil || m.ClusterRoleBinding == nil || m.Role == nil || m.RoleBinding == nil || m.ServiceAccount == nil {
		t.Fatalf("missing RBAC objects: cluster role %v binding %v, role %v binding %v, sa %v", m.ClusterRole != nil,
			m.ClusterRoleBinding != nil, m.Role != nil, m.RoleBinding != nil, m.ServiceAccount != nil)
	}
	want := map[string][]rbacv1.PolicyRule{}
	for _, r := range controller.RBACRules() {
		want[r.Namespace] = append(want[r.Namespace], rbacv1.PolicyRule{APIGroups: r.APIGroups, Resources: r.Resources, Verbs: r.Verbs})
	}
	if len(want) != 2 || want[m.Role.Namespace] == nil {
		t.Fatalf("controller.RBACRules %+v: want cluster-wide rules and rules of the Role's namespace %q", want, m.Role.Namespace)
	}
	equalRules := func(what string, got, want []rbacv1.PolicyRule) {
		if len(got) != len(want) {
			t.Errorf("%s rules %+v, want controller.RBACRules %+v", what, got, want)
			return
		}
		for i := range want {
			g, w := got[i], want[i]
			if !slices.Equal(g.APIGroups, w.APIGroups) || !slices.Equal(g.Resources, w.Resources) || !slices.Equal(g.Verbs, w.Verbs) ||
				len(g.ResourceNames) != 0 || len(g.NonResourceURLs) != 0 {
				t.Errorf("%s rule %d = %+v, want %+v", what, i, g, w)
			}
		}
	}
	equalRules("ClusterRole", m.ClusterRole.Rules, want[""])
	equalRules("Role", m.Role.Rules, want[m.Role.Namespace])
	wantSubj := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: testNamespace}}
	b := m.ClusterRoleBinding
	if b.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: m.ClusterRole.Name}) ||
		!slices.Equal(b.Subjects, wantSubj) {
		t.Errorf("ClusterRoleBinding roleRef %+v subjects %+v, want %s bound to %+v", b.RoleRef, b.Subjects, m.ClusterRole.Name, wantSubj)
	}
	rb := m.RoleBinding
	if rb.Namespace != m.Role.Namespace || rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: m.Role.Name}) ||
		!slices.Equal(rb.Subjects, wantSubj) {
		t.Errorf("RoleBinding %s roleRef %+v subjects %+v, want %s/%s bound to %+v", rb.Namespace, rb.RoleRef, rb.Subjects, m.Role.Namespace, m.Role.Name, wantSubj)
	}
	if m.ServiceAccount.Name != sa || m.ServiceAccount.Namespace != testNamespace {
		t.Errorf("ServiceAccount %s/%s", m.ServiceAccount.Namespace, m.ServiceAccount.Name)
	}
}

// checkAdmissionPolicy: the node-identity policy matches exactly the
// agent's ServiceAccount, fails closed, and is bound with Deny. What it
// allows and denies is tested against a real API server
// (policy_apiserver_test.go).
func checkAdmissionPolicy(t *testing.T, m *manifests, sa string) {
	t.Helper()
	p, b := m.Policy, m.PolicyBinding
	if p == nil || b == nil {
		t.Fatalf("admission policy %v binding %v, want both", p != nil, b != nil)
	}
	if p.Name != fullName+"-node-identity" || b.Spec.PolicyName != p.Name {
		t.Errorf("policy %q, binding names %q", p.Name, b.Spec.PolicyName)
	}
	if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != admissionv1.Fail {
		t.Errorf("failurePolicy %v, want Fail", p.Spec.FailurePolicy)
	}
	want := fmt.Sprintf("request.userInfo.username == %q", "system:serviceaccount:"+testNamespace+":"+sa)
	if len(p.Spec.MatchConditions) != 1 || p.Spec.MatchConditions[0].Expression != want {
		t.Errorf("matchConditions %+v, want only %s", p.Spec.MatchConditions, want)
	}
	if !slices.Equal(b.Spec.ValidationActions, []admissionv1.ValidationAction{admissionv1.Deny}) {
		t.Errorf("validationActions %v, want [Deny]", b.Spec.ValidationActions)
	}
	// The annotations it lets the agent write are the ones the controller
	// publishes (the post-quantum port included: without it a
	// postQuantum-enabled agent could publish nothing at all).
	own := fmt.Sprintf("['%s', '%s', '%s']", controller.AnnotationPublicKey, controller.AnnotationEndpoint, controller.AnnotationPQPort)
	found := false
	for _, v := range p.Spec.Variables {
		found = found || (v.Name == "own" && v.Expression == own)
	}
	if !found {
		t.Errorf("no variable own = %s in %+v", own, p.Spec.Variables)
	}
}
