package main

import (
	"fmt"

	"github.com/crosswire/crosswire/controller"
	"github.com/crosswire/crosswire/proxy"
	"github.com/crosswire/crosswire/wgtun"
)

// desiredFromState maps the controller's view onto the engine's. The
// controller has validated keys already; a key that still fails to parse
// drops that peer only.
func desiredFromState(st controller.State) (proxy.Desired, []controller.Rejection) {
	d := proxy.Desired{Local: st.Local}
	var bad []controller.Rejection
	for _, p := range st.Peers {
		var key wgtun.Key
		if p.PublicKey != "" {
			k, err := wgtun.ParseKey(p.PublicKey)
			if err != nil {
				bad = append(bad, controller.Rejection{Node: p.Name, Reason: fmt.Sprintf("public key: %v", err), Group: controller.GroupKey})
				continue
			}
			key = k
		}
		d.Peers = append(d.Peers, proxy.Peer{Name: p.Name, PublicKey: key, Endpoint: p.Endpoint, PodCIDRs: p.PodCIDRs})
	}
	return d, bad
}
