package chart

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// chartModes are the value sets that change which containers render.
var chartModes = map[string][]string{
	"defaults":       nil,
	"no sysctlInit":  {"--set", "sysctlInit.enabled=false"},
	"privileged":     {"--set", "securityContext.privileged=true"},
	"cleanup":        {"--set", "cleanup.enabled=true"},
	"custom":         {"-f", "CUSTOM"},
	"custom cleanup": {"-f", "CUSTOM", "--set", "cleanup.enabled=true"},
}

func modeArgs(t *testing.T, args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if a == "CUSTOM" {
			out[i] = customValues(t)
		}
	}
	return out
}

func allContainers(pod *corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(pod.InitContainers), pod.Containers...)
}

// TestOneImage: every container in every mode runs the chart's one image
// (an air-gapped cluster mirrors exactly one), with the same pull policy,
// by the binary's absolute path.
func TestOneImage(t *testing.T) {
	for name, args := range chartModes {
		t.Run(name, func(t *testing.T) {
			m := render(t, modeArgs(t, args)...)
			want := "ghcr.io/crosswire/crosswire:0.1.0"
			if strings.HasPrefix(name, "custom") {
				want = "registry.example.com/net/crosswire:v9.8.7"
			}
			for _, c := range allContainers(m.pod()) {
				if c.Image != want {
					t.Errorf("container %s runs %s, want %s", c.Name, c.Image, want)
				}
				if !slices.Equal(c.Command, crosswireCommand) {
					t.Errorf("container %s command %q, want %q", c.Name, c.Command, crosswireCommand)
				}
				if c.ImagePullPolicy != m.pod().Containers[0].ImagePullPolicy {
					t.Errorf("container %s pull policy %s differs", c.Name, c.ImagePullPolicy)
				}
			}
		})
	}
}

// TestImageDigestPins: image.digest makes every container run
// repository@digest, and the tag no longer matters.
func TestImageDigestPins(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	for name, extra := range map[string][]string{
		"digest":         nil,
		"digest and tag": {"--set", "image.tag=9.9.9"},
		"cleanup":        {"--set", "cleanup.enabled=true"},
	} {
		t.Run(name, func(t *testing.T) {
			m := render(t, append([]string{"--set", "image.repository=mirror.example.com:5000/crosswire", "--set", "image.digest=" + digest}, extra...)...)
			for _, c := range allContainers(m.pod()) {
				if c.Image != "mirror.example.com:5000/crosswire@"+digest {
					t.Errorf("container %s runs %s, want the repository pinned by digest", c.Name, c.Image)
				}
			}
		})
	}
}

// TestCommandsKnownToBinary: every container's first argument is a command
// the real binary has, in every mode (a renamed command would crash-loop
// every node); the flags after it are checked by TestFlagsKnownToBinary.
func TestCommandsKnownToBinary(t *testing.T) {
	cmds := binarySubcommands(t)
	seen := map[string]bool{}
	for name, args := range chartModes {
		m := render(t, modeArgs(t, args)...)
		for _, c := range allContainers(m.pod()) {
			if len(c.Args) == 0 {
				t.Errorf("%s: container %s has no arguments: the image's entrypoint alone prints help", name, c.Name)
				continue
			}
			if !slices.Contains(cmds, c.Args[0]) {
				t.Errorf("%s: container %s runs `crosswire %s`, which `crosswire --help` does not list (%v)", name, c.Name, c.Args[0], cmds)
			}
			seen[c.Args[0]] = true
		}
	}
	for _, want := range []string{"agent", "sysctl", "cleanup", "pause"} {
		if !seen[want] {
			t.Errorf("no mode renders `crosswire %s`", want)
		}
	}
}

// TestNoSysctlInitWhenNotNeeded: the privileged init container exists
// only while the agent itself cannot write /proc/sys.
func TestNoSysctlInitWhenNotNeeded(t *testing.T) {
	for name, args := range map[string][]string{"disabled": chartModes["no sysctlInit"], "privileged": chartModes["privileged"]} {
		if ics := render(t, args...).pod().InitContainers; len(ics) != 0 {
			t.Errorf("%s: init containers %+v, want none", name, ics)
		}
	}
}
