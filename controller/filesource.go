package controller

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/crosswire/crosswire/wgtun"
)

// FileSource turns a NodeList file into desired state, for clusters without
// an API server and for tests. It polls rather than watching inotify events
// because editors and config-map mounts replace files by rename, and a poll
// of one small file per second costs nothing.
type FileSource struct {
	Path        string
	Self        string
	SelfKey     wgtun.Key
	DefaultPort uint16
	// Strict is KubeSource.Strict.
	Strict   bool
	Interval time.Duration
	Log      *zap.Logger

	// tombstoneTTL replaces TombstoneTTL when set: for tests.
	tombstoneTTL time.Duration
}

// Run gives sink the state from the file now and after every change
// until ctx ends. A file that cannot be read or parsed is logged and the
// last good state stays in force: a bad edit must never drop good peers.
func (f *FileSource) Run(ctx context.Context, sink Sink) error {
	log := f.Log
	if log == nil {
		log = zap.NewNop()
	}
	interval := f.Interval
	if interval <= 0 {
		interval = time.Second
	}
	var last []byte
	var lastErr string
	// The same tracker as KubeSource's, for its seniority and tombstones: a
	// node dropped from the file is treated as a deleted Node.
	tr := NewTracker(f.Self, f.SelfKey, f.DefaultPort, f.Strict)
	if f.tombstoneTTL > 0 {
		tr.ttl = f.tombstoneTTL
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		data, err := os.ReadFile(f.Path)
		if err == nil && bytes.Equal(data, last) {
			lastErr = "" // back to the good file: log the next failure again
			if c := tr.Expire(); !c.Empty() {
				log.Info("tombstones of removed nodes expired", zap.Int("unfenced", len(c.Unfence)),
					zap.Bool("local_changed", c.LocalChanged))
				sink.Apply(c)
			}
		}
		if err == nil && !bytes.Equal(data, last) {
			var st State
			st, err = f.build(data, tr)
			if err == nil {
				last = data
				lastErr = ""
				logState(log, f.Self, st)
				sink.Replace(st)
			}
		}
		if err != nil && err.Error() != lastErr {
			lastErr = err.Error()
			log.Error("nodes file unusable; keeping the last good state", zap.String("path", f.Path), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (f *FileSource) build(data []byte, tr *Tracker) (State, error) {
	nodes, err := ParseNodeList(data)
	if err != nil {
		return State{}, fmt.Errorf("%s: %w", f.Path, err)
	}
	return tr.Reset(nodes), nil
}

func logState(log *zap.Logger, self string, st State) {
	switch {
	case !st.SelfFound && len(st.Local) > 0:
		log.Warn("this node is no longer in the nodes file; keeping the pod CIDRs it last held until it is back or its tombstone expires",
			zap.String("node", self), zap.Stringers("local_cidrs", st.Local))
	case !st.SelfFound:
		log.Warn("this node is not in the nodes file; no local pod CIDRs", zap.String("node", self))
	}
	for _, r := range st.Rejected {
		log.Warn("node rejected", zap.String("peer", r.Node), zap.String("reason", r.Reason))
	}
	log.Info("nodes file loaded", zap.Int("peers", len(st.Peers)), zap.Int("rejected", len(st.Rejected)))
}
