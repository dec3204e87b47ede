package kubecluster

import (
	"fmt"
	"path/filepath"
)

// Cluster-wide address plan. Pod CIDRs are handed out by the
// controller-manager from podCIDR, one /24 per node in registration order.
const (
	podCIDR     = "10.244.0.0/16"
	serviceCIDR = "10.96.0.0/16"
)

// startControlPlane runs kube-controller-manager and kube-scheduler in the
// underlay namespace beside kube-apiserver, each with its own identity
// (bootstrap RBAC binds system:kube-controller-manager and
// system:kube-scheduler).
func (c *Cluster) startControlPlane() error {
	kcm := filepath.Join(c.Root, "kube-controller-manager.kubeconfig")
	if err := c.writeKubeconfig(kcm, "system:kube-controller-manager"); err != nil {
		return err
	}
	sched := filepath.Join(c.Root, "kube-scheduler.kubeconfig")
	if err := c.writeKubeconfig(sched, "system:kube-scheduler"); err != nil {
		return err
	}
	var err error
	c.controllerManager, err = c.Net.Start(c.Net.Underlay, filepath.Join(c.Root, "kube-controller-manager.log"),
		c.tools.ControllerManager,
		"--kubeconfig="+kcm,
		"--authentication-kubeconfig="+kcm,
		"--authorization-kubeconfig="+kcm,
		"--bind-address=127.0.0.1",
		"--cert-dir="+filepath.Join(c.Root, "kcm-certs"),
		"--leader-elect=false",
		"--service-account-private-key-file="+c.API.ServiceAccountKeyFile(),
		"--root-ca-file="+c.API.CAFile(),
		"--use-service-account-credentials=true",
		"--allocate-node-cidrs=true",
		"--cluster-cidr="+podCIDR,
		"--node-cidr-mask-size=24",
		"--service-cluster-ip-range="+serviceCIDR,
		"--v=1",
	)
	if err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	c.scheduler, err = c.Net.Start(c.Net.Underlay, filepath.Join(c.Root, "kube-scheduler.log"),
		c.tools.Scheduler,
		"--kubeconfig="+sched,
		"--authentication-kubeconfig="+sched,
		"--authorization-kubeconfig="+sched,
		"--bind-address=127.0.0.1",
		"--leader-elect=false",
		"--v=1",
	)
	if err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for a client certificate identity.
func (c *Cluster) writeKubeconfig(path, user string, groups ...string) error {
	cfg, err := c.API.NewUser(user, groups...)
	if err != nil {
		return err
	}
	return c.API.WriteKubeconfig(cfg, path)
}
