package apiserver

import (
	"context"
	"fmt"
	"net"

	"github.com/crosswire/crosswire/test/netcluster"
)

// inNS runs fn inside the named network namespace (netcluster.Do), or
// right here when ns is empty.
func inNS(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	return netcluster.Do(ns, fn)
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
