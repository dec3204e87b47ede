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
	seen := newSeniority()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		data, err := os.ReadFile(f.Path)
		if err == nil && bytes.Equal(data, last) {
			lastErr = "" // back to the good file: log the next failure again
		}
		if err == nil && !bytes.Equal(data, last) {
			var st State
			st, err = f.build(data, seen)
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

func (f *FileSource) build(data []byte, seen *seniority) (State, error) {
	nodes, err := ParseNodeList(data)
	if err != nil {
		return State{}, fmt.Errorf("%s: %w", f.Path, err)
	}
	seen.sync(nodes)
	return Build(Input{Self: f.Self, SelfKey: f.SelfKey, DefaultPort: f.DefaultPort, Nodes: nodes, Seen: seen.seen, Fence: f.Strict}), nil
}

func logState(log *zap.Logger, self string, st State) {
	if !st.SelfFound {
		log.Warn("this node is not in the nodes file; no local pod CIDRs", zap.String("node", self))
	}
	for _, r := range st.Rejected {
		log.Warn("node rejected", zap.String("peer", r.Node), zap.String("reason", r.Reason))
	}
	log.Info("nodes file loaded", zap.Int("peers", len(st.Peers)), zap.Int("rejected", len(st.Rejected)))
}
