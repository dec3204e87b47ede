package kubecluster

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/crosswire/crosswire/test/apiserver"
	"github.com/crosswire/crosswire/test/netcluster"
)

// registryAddr is where the registry serves on the underlay bridge, beside
// the API server (.2); nodes are .11 and up, .1 is the unanswered gateway.
var registryAddr = netip.MustParseAddrPort("192.168.77.3:5000")

// startRegistry runs distribution's registry (plain HTTP, filesystem
// storage under Root) in the underlay namespace and waits for /v2/.
func (c *Cluster) startRegistry() error {
	if _, err := netcluster.Exec(c.Net.Underlay, "ip", "addr", "add", registryAddr.Addr().String()+"/24", "dev", "br0"); err != nil {
		return fmt.Errorf("registry address: %w", err)
	}
	dir := filepath.Join(c.Root, "registry")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), registryAddr)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("registry dir: %w", err)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("registry config: %w", err)
	}
	// Tracing off: by default the registry exports traces over OTLP, to
	// wherever the environment's OTEL_EXPORTER_OTLP_ENDPOINT points.
	p, err := c.Net.Start(c.Net.Underlay, filepath.Join(c.Root, "registry.log"),
		"env", "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true", c.tools.Registry, "serve", cfgPath)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	c.registry = p
	client := c.RegistryClient()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get("http://" + registryAddr.String() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("registry not ready: %v; log:\n%s", err, tail(p.Log(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RegistryHost is the registry's host:port as image references name it,
// e.g. 192.168.77.3:5000/crosswire/crosswire:v1.
func (c *Cluster) RegistryHost() string { return registryAddr.String() }

// RegistryClient is an HTTP client whose connections start inside the
// underlay namespace, for pushing images from the test process.
func (c *Cluster) RegistryClient() *http.Client {
	return &http.Client{
		Timeout:   2 * time.Minute,
		Transport: c.RegistryTransport(),
	}
}

// RegistryTransport is RegistryClient's transport, for go-containerregistry's
// remote.WithTransport.
func (c *Cluster) RegistryTransport() *http.Transport {
	return &http.Transport{DialContext: apiserver.DialerIn(c.Net.Underlay)}
}
