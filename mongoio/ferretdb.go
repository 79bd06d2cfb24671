package mongoio

import (
	"context"
	"fmt"
	"log/slog"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ferretDBMaxWrites is the default [WithMaxWritesPerCommand] of replacements
// on FerretDB.
const ferretDBMaxWrites = 32

// detectServer resolves, once, the defaults of [WithMaxWritesPerCommand],
// [WithInsertFirst] and [WithFlushConcurrency]: no limit, replacements only and
// [DefaultFlushConcurrency], except on FerretDB, which says so in its
// buildInfo reply.
func (s *Sink[T]) detectServer(ctx context.Context) error {
	if s.detected {
		return nil
	}
	var info struct {
		FerretDB string `bson:"ferretdbVersion"`
	}
	err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info)
	if err != nil && transient(err) {
		return fmt.Errorf("mongoio: buildInfo: %w", err)
	}
	ferretDB := err == nil && info.FerretDB != ""
	switch {
	case err != nil:
		s.log.DebugContext(ctx, "mongoio: buildInfo failed; assuming MongoDB", slog.Any("err", err))
	case ferretDB:
		s.log.DebugContext(ctx, "mongoio: FerretDB detected; inserting first, limiting replacements per command, one collection at a time by default",
			slog.String("ferretdb", info.FerretDB), slog.Int("max", ferretDBMaxWrites))
	}
	s.perCommand = s.cfg.maxPerCommand
	if s.perCommand == 0 {
		s.perCommand = -1
		if ferretDB {
			s.perCommand = ferretDBMaxWrites
		}
	}
	s.insertFirst = ferretDB
	if s.cfg.insertFirst != nil {
		s.insertFirst = *s.cfg.insertFirst
	}
	s.concurrency = DefaultFlushConcurrency
	switch {
	case s.cfg.concurrencySet:
		s.concurrency = s.cfg.concurrency
	case ferretDB:
		s.concurrency = 1
	}
	s.oneReplace = ferretDB
	s.detected = true
	return nil
}

// lockReplace takes the lock of oneReplace, when set. FerretDB v1.24 holds
// a backend connection, from a pool of 100 on SQLite and 50 on PostgreSQL,
// for every write of an update command that matches an existing document
// until the command ends; concurrent bulk writes of 32 replacements could
// take them all and wait for each other forever.
func (s *Sink[T]) lockReplace(ctx context.Context) (unlock func(), err error) {
	if !s.oneReplace {
		return func() {}, nil
	}
	select {
	case s.replacing <- struct{}{}:
		return func() { <-s.replacing }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
