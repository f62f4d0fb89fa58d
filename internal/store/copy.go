package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// copyData builds a COPY ... FROM STDIN (FORMAT binary) stream by hand.
// pgx's CopyFrom looks up an encode plan for every value of every row, which
// cost walhook a tenth of its CPU at full speed; the recorder's columns are
// few and fixed, so each is written straight into one reused buffer.
//
// Layout (PostgreSQL docs, "COPY", binary format): a signature, flags and
// header extension length; per row a 16-bit field count and per field a
// 32-bit length (-1: NULL) followed by the value in its type's binary send
// format; a 16-bit -1 ends the stream.
type copyData struct {
	b      []byte
	fields int // per row: the COPY's column count
}

const copySignature = "PGCOPY\n\xff\r\n\x00"

func (c *copyData) reset() {
	c.b = append(c.b[:0], copySignature...)
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // flags: no OIDs
	c.b = binary.BigEndian.AppendUint32(c.b, 0) // no header extension
}

// row starts a row; its fields follow.
func (c *copyData) row() { c.b = binary.BigEndian.AppendUint16(c.b, uint16(c.fields)) }

func (c *copyData) null() { c.b = binary.BigEndian.AppendUint32(c.b, 0xffffffff) }

// text is a text, varchar or json value: its bytes as they are (the server
// checks the encoding, as it does for text parameters).
func (c *copyData) text(s string) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(s)))
	c.b = append(c.b, s...)
}

func (c *copyData) bytes(v []byte) {
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(len(v)))
	c.b = append(c.b, v...)
}

// optText writes "" as NULL.
func (c *copyData) optText(s string) {
	if s == "" {
		c.null()
		return
	}
	c.text(s)
}

// freeText writes text from outside as optText does for parameters:
// storable, or NULL when empty.
func (c *copyData) freeText(s string) { c.optText(storable(s)) }

func (c *copyData) int4(v int32) {
	c.b = binary.BigEndian.AppendUint32(c.b, 4)
	c.b = binary.BigEndian.AppendUint32(c.b, uint32(v))
}

// optInt4 writes 0 as NULL.
func (c *copyData) optInt4(v int) {
	if v == 0 {
		c.null()
		return
	}
	c.int4(int32(v))
}

func (c *copyData) int8(v int64) {
	c.b = binary.BigEndian.AppendUint32(c.b, 8)
	c.b = binary.BigEndian.AppendUint64(c.b, uint64(v))
}

// postgresEpoch is where timestamptz counts from, in Unix microseconds.
const postgresEpoch = 946684800 * 1_000_000

// timestamptz writes t as microseconds since 2000-01-01 UTC, truncated as
// pgx does.
func (c *copyData) timestamptz(t time.Time) {
	c.int8(t.Unix()*1_000_000 + int64(t.Nanosecond()/1000) - postgresEpoch)
}

// optTimestamptz writes the zero time as NULL.
func (c *copyData) optTimestamptz(t time.Time) {
	if t.IsZero() {
		c.null()
		return
	}
	c.timestamptz(t)
}

func (c *copyData) end() { c.b = binary.BigEndian.AppendUint16(c.b, 0xffff) }

// copyIn sends rows built by fill into table's columns; size is about the
// bytes they take, so the buffer grows once instead of by doubling.
func (s *Store) copyIn(ctx context.Context, tx pgx.Tx, table string, columns []string, size int, fill func(*copyData)) error {
	c, _ := s.copyBuffers.Get().(*copyData)
	if c == nil {
		c = &copyData{}
	}
	c.reset()
	c.fields = len(columns)
	c.b = slices.Grow(c.b, size)
	fill(c)
	c.end()
	sql := "COPY " + table + " (" + strings.Join(columns, ", ") + ") FROM STDIN (FORMAT binary)"
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(c.b), sql); err != nil {
		// Not reused: on some errors pgconn returns while its sending
		// goroutine may still read the buffer.
		return fmt.Errorf("copy %s: %w", table, err)
	}
	if cap(c.b) <= 4<<20 { // a rare huge batch does not pin its buffer for good
		s.copyBuffers.Put(c)
	}
	return nil
}

// copyNewRows writes new events, deliveries and attempts by COPY.
func (s *Store) copyNewRows(ctx context.Context, tx pgx.Tx, b *Batch) error {
	if len(b.Events) > 0 {
		size := 0
		for i := range b.Events {
			size += 128 + len(b.Events[i].Payload)
		}
		if err := s.copyIn(ctx, tx, "events",
			[]string{"id", "event_type", "tenant_id", "payload", "outbox_id", "lsn", "created_at", "received_at", "committed_at"}, size,
			func(c *copyData) {
				for i := range b.Events {
					e := &b.Events[i]
					c.row()
					c.text(e.ID)
					c.text(e.Type)
					c.optText(e.TenantID)
					c.bytes(e.Payload) // json: its binary form is its text
					c.optText(e.OutboxID)
					c.int8(int64(e.LSN))
					c.timestamptz(e.CreatedAt)
					c.timestamptz(e.ReceivedAt)
					c.optTimestamptz(e.CommittedAt)
				}
			}); err != nil {
			return err
		}
	}
	if len(b.Deliveries) > 0 {
		if err := s.copyIn(ctx, tx, "deliveries",
			[]string{"id", "endpoint_id", "event_id", "event_type", "tenant_id", "status", "attempts", "max_attempts",
				"next_retry_at", "last_status_code", "last_response", "last_error", "created_at", "updated_at", "delivered_at",
				"last_attempt_at", "last_duration_us"}, 320*len(b.Deliveries),
			func(c *copyData) {
				for i := range b.Deliveries {
					d := &b.Deliveries[i]
					c.row()
					c.text(d.ID)
					c.text(d.EndpointID)
					c.text(d.EventID)
					c.text(d.EventType)
					c.optText(d.TenantID)
					c.text(string(d.Status))
					c.int4(int32(d.Attempts))
					c.int4(int32(d.MaxAttempts))
					c.optTimestamptz(d.NextRetryAt)
					c.optInt4(d.LastStatusCode)
					c.freeText(d.LastResponse)
					c.freeText(d.LastError)
					c.timestamptz(d.CreatedAt)
					c.timestamptz(d.UpdatedAt)
					c.optTimestamptz(d.DeliveredAt)
					c.optTimestamptz(d.LastAttemptAt)
					if d.LastAttemptAt.IsZero() {
						c.null()
					} else {
						c.int8(d.LastDuration.Microseconds())
					}
				}
			}); err != nil {
			return err
		}
	}
	if len(b.Attempts) > 0 {
		if err := s.copyIn(ctx, tx, "attempts",
			[]string{"delivery_id", "attempt", "endpoint_id", "started_at", "duration_us", "status_code", "response", "error"},
			256*len(b.Attempts),
			func(c *copyData) {
				for i := range b.Attempts {
					a := &b.Attempts[i]
					c.row()
					c.text(a.DeliveryID)
					c.int4(int32(a.Attempt))
					c.text(a.EndpointID)
					c.timestamptz(a.StartedAt)
					c.int8(a.Duration.Microseconds())
					c.optInt4(a.StatusCode)
					c.freeText(a.Response)
					c.freeText(a.Error)
				}
			}); err != nil {
			return err
		}
	}
	return nil
}
