package main

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// tableWatcher is nft.Manager.Watch.
type tableWatcher interface {
	Watch(ctx context.Context, changed func()) error
}

// watchTables asks the engine to repair at once whenever another program
// changes crosswire's nft tables, instead of at the next resync. The
// engine's own "repaired drift" line says what was repaired. Without the
// notifications (an error) repairs wait for the resync, as before; the
// watch is retried.
func watchTables(ctx context.Context, rules tableWatcher, resync func(), log *zap.Logger) {
	const retry = 10 * time.Second
	for {
		err := rules.Watch(ctx, func() {
			log.Debug("nft tables changed by another program; repairing now")
			resync()
		})
		if ctx.Err() != nil {
			return
		}
		log.Warn("not watching the nft tables for changes; repairs wait for the resync", zap.Error(err), zap.Duration("retry_in", retry))
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
	}
}
