package store

import (
	"context"
	"slices"
)

// The SQL of the list queries, for tests of their plans.
var (
	DeliveriesQuery = deliveriesQuery
	EventsQuery     = eventsQuery
)

// MigrateUpTo applies the migrations up to version, as a walhook of that
// schema left them, for tests of what a later migration does to its rows.
func (s *Store) MigrateUpTo(ctx context.Context, version int) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	ms = slices.DeleteFunc(ms, func(m migration) bool { return m.version > version })
	for _, p := range s.pools() {
		if err := s.migrate(ctx, p, ms); err != nil {
			return err
		}
	}
	return nil
}
