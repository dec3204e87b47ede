// Command demo runs crosswire on a 3-node network-namespace cluster on this
// machine, shows each kind of flow with the evidence of whether it was
// encrypted, and leaves the cluster running for exploring. `demo down`
// removes everything. Run as root via `make demo` / `make demo-down`.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/crosswire/crosswire/test/netcluster"
)

// prefix names the demo's namespaces; state remembers where its files are.
const (
	prefix    = "cwdemo"
	stateFile = "/run/crosswire-demo.json"
)

type state struct {
	Prefix string `json:"prefix"`
	Root   string `json:"root"`
}

func main() {
	bin := flag.String("bin", "bin/crosswire", "crosswire binary")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: demo [-bin bin/crosswire] up|down")
	}
	flag.Parse()
	var err error
	switch flag.Arg(0) {
	case "up":
		err = up(*bin)
	case "down":
		err = down()
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func down() error {
	var st state
	data, err := os.ReadFile(stateFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		st.Prefix = prefix
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("%s: %w", stateFile, err)
		}
	}
	sockets := []string{}
	for i := 1; i <= 9; i++ {
		sockets = append(sockets, fmt.Sprintf("/var/run/wireguard/cw-node%d.sock", i))
	}
	errs := []error{netcluster.Teardown(st.Prefix, st.Root)}
	for _, s := range append(sockets, stateFile) {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Println("demo: removed every namespace, agent, socket and file of the demo")
	return nil
}

func step(what string, fn func() error) error {
	fmt.Printf("  %-34s", what+" ")
	start := time.Now()
	if err := fn(); err != nil {
		fmt.Println("FAILED")
		return fmt.Errorf("%s: %w", what, err)
	}
	fmt.Printf("ok (%.1fs)\n", time.Since(start).Seconds())
	return nil
}
