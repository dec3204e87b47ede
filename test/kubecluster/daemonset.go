package kubecluster

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WaitDaemonSetReady waits until a DaemonSet runs updated and ready on
// every node. helm's --wait is not this: it returns while maxUnavailable
// pods are still starting (at once with maxUnavailable 100%).
func (c *Cluster) WaitDaemonSetReady(ctx context.Context, ns, name string) error {
	var last string
	for {
		ds, err := c.Client().AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			st := ds.Status
			if st.DesiredNumberScheduled == int32(len(c.Nodes)) && st.ObservedGeneration == ds.Generation &&
				st.NumberReady == st.DesiredNumberScheduled && st.UpdatedNumberScheduled == st.DesiredNumberScheduled {
				return nil
			}
			last = fmt.Sprintf("%+v", st)
		} else {
			last = err.Error()
		}
		if err := c.Alive(); err != nil {
			return err
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return fmt.Errorf("DaemonSet %s/%s not ready: %s", ns, name, last)
		}
	}
}
