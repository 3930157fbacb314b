package store

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// feedChannel is the PostgreSQL notification channel of new feed
// sequences (payload: the sequence).
const feedChannel = "netward_feed"

// WatchFeed calls notify with each feed sequence another replica (or this
// one) publishes, as soon as it commits, until ctx ends: PostgreSQL
// LISTEN/NOTIFY on a connection of its own, so replicas behind a load
// balancer wake their held long polls within milliseconds instead of at
// their next refresh. After a (re)connection it calls notify(0): a
// sequence may have been published while it was not listening, and the
// caller looks at the store. On SQLite (one process) it only waits for
// ctx. It returns nil when ctx ends.
func (s *Store) WatchFeed(ctx context.Context, notify func(seq int64)) error {
	if s.dialect != Postgres {
		<-ctx.Done()
		return nil
	}
	for ctx.Err() == nil {
		err := s.listen(ctx, notify)
		if ctx.Err() != nil {
			break
		}
		s.log.Warn("feed: lost the database notification connection; reconnecting (replicas fall back to feed.refreshSeconds meanwhile)", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (s *Store) listen(ctx context.Context, notify func(int64)) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+feedChannel); err != nil {
		return err
	}
	notify(0)
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		seq, _ := strconv.ParseInt(n.Payload, 10, 64)
		notify(seq)
	}
}
