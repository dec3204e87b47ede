package apiserver

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNS runs fn on a locked OS thread switched into the named network
// namespace (the caller's own namespace when ns is empty). Sockets fn creates
// stay in that namespace for their whole life, whichever goroutine later uses
// them.
func inNS(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", ns, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the wrong namespace: leave it locked so the
		// runtime discards it when the goroutine exits instead of reusing it.
		return fmt.Errorf("restore netns after %s: %w (fn: %v)", ns, err, fnErr)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// DialerIn returns a DialContext that opens connections from inside the
// named network namespace; plug it into rest.Config.Dial (or an
// http.Transport) to act as a client living in a node's namespace.
func DialerIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// freePorts reserves one free TCP port on each of addrs inside ns by
// binding to port 0, holding all listeners until every port is chosen (so
// no two are equal), then releases them for the processes to take. Another
// process could grab one in between; the window is tiny and the process's
// log then names the port.
func freePorts(ns string, addrs ...string) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	err := inNS(ns, func() error {
		for _, a := range addrs {
			l, err := net.Listen("tcp", net.JoinHostPort(a, "0"))
			if err != nil {
				return fmt.Errorf("reserve a port on %s: %w", a, err)
			}
			ls = append(ls, l)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ports := make([]int, len(ls))
	for i, l := range ls {
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
