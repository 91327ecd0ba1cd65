// pause is the sandbox ("pause") container of the test node's pods: it holds the pod's
// namespaces open, reaps children that are reparented to it (it is PID 1 of the pod when the
// PID namespace is shared), and exits 0 on SIGINT or SIGTERM. Built statically by
// scripts/build-node-tools.mjs into an OCI image, so the tests need no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
