package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/vishvananda/netlink"

	"github.com/crosswire/crosswire/nft"
	"github.com/crosswire/crosswire/proxy"
)

func newCleanupCommand() *cobra.Command {
	o := defaultOptions()
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove every kernel object crosswire created on this node (table, rule, routes, device, socket); keeps the key",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCleanup(&o)
		},
	}
	o.datapathFlags(cmd.Flags())
	return cmd
}

func runCleanup(o *options) error {
	if err := o.proxyConfig().Validate(); err != nil {
		return err
	}
	rules, err := nft.New(o.nftConfig())
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	defer rules.Close()
	errs := []error{proxy.Cleanup(rules, proxy.NewNetlinkRouter(o.proxyConfig(), nil))}

	// A running agent's device disappears with it; one left behind (a
	// persistent TUN, or an agent still running) is removed only if it is
	// a TUN, never another kind of link that happens to have the name.
	if link, err := netlink.LinkByName(o.iface); err == nil {
		if link.Type() == "tuntap" {
			if err := netlink.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("delete device %s: %w", o.iface, err))
			}
		} else {
			errs = append(errs, fmt.Errorf("device %s exists but is a %s, not crosswire's tunnel; left alone", o.iface, link.Type()))
		}
	}
	sock := filepath.Join(o.socketDir, o.iface+".sock")
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove socket: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Println("crosswire: removed nftables table, policy rules, routes, tunnel device and socket")
	return nil
}
