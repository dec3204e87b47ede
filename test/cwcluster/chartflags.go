package cwcluster

// chartDefaults are the flags charts/crosswire passes to `crosswire agent`
// with its default values, in the chart's order. The chart tests assert the
// chart renders exactly these; the demo runs its agents with them.
var chartDefaults = [][2]string{
	{"state-dir", "/var/lib/crosswire"},
	{"socket-dir", "/var/run/wireguard"},
	{"interface", "crosswire0"},
	{"mark", "0x1000"},
	{"mask", "0x1000"},
	{"table", "202"},
	{"rule-priority", "1200"},
	{"nft-table", "crosswire"},
	{"log-level", "info"},
	{"listen-port", "51820"},
	{"wg-fwmark", "0x2000"},
	{"mtu", "0"},
	{"strict", "false"},
	{"resync-interval", "30s"},
	{"keepalive", "0"},
	{"on-demand-peers", "false"},
	{"peer-idle-timeout", "5m"},
	{"post-quantum", "off"},
	{"pq-port", "51821"},
	{"pq-rotate", "2m"},
	{"metrics-port", "9763"},
	{"metrics-per-peer", "false"},
	{"status-socket", "/var/run/crosswire/status.sock"},
}

// ChartFlags returns the chart's default agent flags as --name=value, with
// the values in override replacing the defaults of the same names (the
// demo overrides what must differ per node on one machine).
func ChartFlags(override map[string]string) []string {
	out := make([]string, 0, len(chartDefaults))
	for _, kv := range chartDefaults {
		v := kv[1]
		if o, ok := override[kv[0]]; ok {
			v = o
		}
		out = append(out, "--"+kv[0]+"="+v)
	}
	return out
}
