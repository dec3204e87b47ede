// Package agentstatus is the agent's view for operators: it builds a
// status report from the engine, the WireGuard device and the nftables
// table, classifies every peer (ok, idle, waiting for key, handshake stale,
// rejected), renders the report as text or JSON for `crosswire status`,
// serves it on a unix socket, and exports the same facts as Prometheus
// metrics on a private registry together with /healthz and /readyz.
//
// `crosswire status` reads the device and the table afresh; metrics are
// served from a snapshot of what the datapath last read anyway, so a
// scrape reads nothing. Neither moves a peer's state: the handshake
// tracker observes only the device's own reads.
package agentstatus
