// Command etcd is the stock etcd server (go.etcd.io/etcd/server/v3/etcdmain),
// built from source at the version pinned in ../go.mod so tests do not depend
// on a distribution's etcd package.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
