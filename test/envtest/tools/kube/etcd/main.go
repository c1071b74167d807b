// Command etcd is the etcd server, built from the go.etcd.io/etcd/server/v3
// version that k8s.io/kubernetes selects (see go.mod), for the operator tests'
// envtest-style control plane. It is test/envtest/build-tools.sh's input; the
// binary goes to the ignored .tools/ folder and is never committed.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
