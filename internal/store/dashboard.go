package store

// Reads of the dashboard (package ui): recent activity per endpoint.

import (
	"context"
	"fmt"
	"time"
)

// ActivityHours is how many hourly buckets EndpointActivity counts.
const ActivityHours = 24

// HourCounts counts the deliveries created in one hour by their status now.
type HourCounts struct {
	Delivered, Failed, Retrying, Pending int
}

// Activity is an endpoint's recent deliveries.
type Activity struct {
	// Hours[i] counts deliveries created between ActivityHours-i and
	// ActivityHours-i-1 hours before now: oldest first.
	Hours [ActivityHours]HourCounts
	// LastDeliveryAt is when its newest delivery was created (zero: none).
	LastDeliveryAt time.Time
}

// EndpointActivity returns the activity of each endpoint in ids over the
// ActivityHours before now (endpoints without deliveries are absent). Both
// queries run on the (endpoint_id, id) index of deliveries: ids begin with
// their creation time.
func (s *Store) EndpointActivity(ctx context.Context, ids []string, now time.Time) (map[string]*Activity, error) {
	out := map[string]*Activity{}
	if len(ids) == 0 {
		return out, nil
	}
	get := func(id string) *Activity {
		a := out[id]
		if a == nil {
			a = &Activity{}
			out[id] = a
		}
		return a
	}
	rows, err := s.pool.Query(ctx, `SELECT d.endpoint_id,
			least(greatest(floor(extract(epoch FROM ($2::timestamptz - d.created_at)) / 3600), 0), $3 - 1)::int AS ago,
			count(*) FILTER (WHERE d.status = 'delivered'), count(*) FILTER (WHERE d.status = 'failed'),
			count(*) FILTER (WHERE d.status = 'retrying'), count(*) FILTER (WHERE d.status = 'pending')
		FROM deliveries d
		WHERE d.endpoint_id = ANY($1) AND d.id >= $4
		GROUP BY 1, 2`, ids, now, ActivityHours, DeliveryIDFloor(now.Add(-ActivityHours*time.Hour)))
	if err != nil {
		return nil, fmt.Errorf("endpoint activity: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var ago int
		var c HourCounts
		if err := rows.Scan(&id, &ago, &c.Delivered, &c.Failed, &c.Retrying, &c.Pending); err != nil {
			return nil, fmt.Errorf("endpoint activity: %w", err)
		}
		h := &get(id).Hours[ActivityHours-1-ago]
		h.Delivered += c.Delivered
		h.Failed += c.Failed
		h.Retrying += c.Retrying
		h.Pending += c.Pending
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("endpoint activity: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT e.id, l.created_at FROM unnest($1::text[]) AS e(id)
		CROSS JOIN LATERAL (SELECT d.created_at FROM deliveries d WHERE d.endpoint_id = e.id
			ORDER BY d.id DESC LIMIT 1) l`, ids)
	if err != nil {
		return nil, fmt.Errorf("endpoint last delivery: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("endpoint last delivery: %w", err)
		}
		get(id).LastDeliveryAt = at
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("endpoint last delivery: %w", err)
	}
	return out, nil
}
