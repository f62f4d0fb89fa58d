// Package pipeline turns committed transactions from the stream into work:
// outbox inserts become events (or dead letters), events are matched to
// endpoints, each match becomes a delivery that is handed to the recorder
// and then to the dispatcher; endpoint changes that arrive on the same
// stream update the routing table in commit order, so a change applies
// exactly to the events committed after it.
//
// Ids are derived, not random (store.EventID, store.DeliveryID), so a
// transaction streamed again after a crash produces the same ids; a
// delivery's id is sent as webhook-id, so a re-sent request can be
// recognised by the receiver.
package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/walhook/walhook/internal/delivery"
	"github.com/walhook/walhook/internal/metrics"
	"github.com/walhook/walhook/internal/recorder"
	"github.com/walhook/walhook/internal/route"
	"github.com/walhook/walhook/internal/store"
	"github.com/walhook/walhook/internal/stream"
)

// Outbox says which relation is the outbox and which columns hold what.
type Outbox struct {
	store.Outbox
	MaxPayloadBytes int
	// PayloadKinds are the JSON kinds accepted (object, array, string,
	// number, boolean, null).
	PayloadKinds []string
}

// Scheduler is told what the stream learns that concerns waiting deliveries.
type Scheduler interface {
	EndpointChanged(endpointID string)
	Rescan()
}

// Options configure a Pipeline.
type Options struct {
	Outbox      Outbox
	Schema      string // walhook's schema, where the endpoints table lives
	MaxAttempts int
	Store       *store.Store
	Router      *route.Router
	Recorder    *recorder.Recorder
	Dispatcher  *delivery.Dispatcher
	Scheduler   Scheduler
	Logger      *slog.Logger
	Metrics     *metrics.Metrics
}

// Pipeline is the stream's handler.
type Pipeline struct {
	opts Options
	log  *slog.Logger
	m    *metrics.Metrics
	// seen holds the event types already in the catalogue, each as the
	// one string that events of that type share.
	seen map[string]string
}

// maxSeenTypes bounds the memo of catalogued event types.
const maxSeenTypes = 10000

// New makes a pipeline.
func New(opts Options) *Pipeline {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.Discard()
	}
	return &Pipeline{opts: opts, log: opts.Logger, m: opts.Metrics, seen: map[string]string{}}
}

// Durable implements stream.Handler.
func (p *Pipeline) Durable() uint64 { return p.opts.Recorder.Durable() }

// Ready implements stream.Handler.
func (p *Pipeline) Ready(ctx context.Context) error { return p.opts.Recorder.Ready(ctx) }

// HandleTxn implements stream.Handler.
func (p *Pipeline) HandleTxn(ctx context.Context, txn *stream.Txn) error {
	now := time.Now()
	rec := &recorder.Txn{EndLSN: txn.EndLSN}
	var jobs []*delivery.Job
	var chunks jobChunks
	var visible bool
	ob := p.opts.Outbox
	for i := range txn.Changes {
		c := &txn.Changes[i]
		if c.Rel == nil {
			continue // logical message (heartbeat)
		}
		own := c.Rel.Namespace == p.opts.Schema
		if own && !visible && (c.Rel.Name == "endpoints" || c.Rel.Name == "signals") {
			// What follows reads what this transaction wrote.
			if err := p.opts.Store.WaitVisible(ctx, txn.Xid); err != nil {
				return err
			}
			visible = true
		}
		switch {
		case own && c.Rel.Name == "endpoints":
			if err := p.endpointChanged(ctx, c); err != nil {
				return err
			}
		case own && c.Rel.Name == "signals":
			// Deliveries were re-queued by hand, in this transaction.
			p.opts.Scheduler.Rescan()
		case c.Op == stream.Insert && c.Rel.Namespace == ob.Schema && c.Rel.Name == ob.Table:
			ev, dl, class := p.decode(c, txn, i, now)
			if dl != nil {
				rec.DeadLetters = append(rec.DeadLetters, *dl)
				p.m.Inc(p.m.Events, metrics.EventDeadLettered)
				p.m.Inc(p.m.DeadLetters, class)
				p.log.Warn("outbox row dead-lettered", "lsn", txn.CommitLSN, "outbox_id", dl.OutboxID, "reason", dl.Reason)
				continue
			}
			rec.Events = append(rec.Events, ev)
			if _, ok := p.seen[ev.Type]; !ok && len(p.seen) < maxSeenTypes {
				p.seen[ev.Type] = ev.Type
				rec.EventTypes = append(rec.EventTypes, ev.Type)
			}
			targets := p.opts.Router.Table().Match(ev.TenantID, ev.Type)
			if len(targets) == 0 {
				p.m.Inc(p.m.Events, metrics.EventNoSubscriber)
				continue
			}
			p.m.Inc(p.m.Events, metrics.EventRouted)
			for _, ep := range targets {
				id := store.DeliveryID(txn.CommitTime, ev.ID, ep.ID)
				maxAttempts := p.opts.MaxAttempts
				if ep.MaxAttempts > 0 {
					maxAttempts = ep.MaxAttempts
				}
				rec.Deliveries = append(rec.Deliveries, store.Delivery{
					ID: id, EndpointID: ep.ID, EventID: ev.ID, EventType: ev.Type, TenantID: ev.TenantID,
					Status: store.StatusPending, MaxAttempts: maxAttempts, CreatedAt: txn.CommitTime, UpdatedAt: now,
				})
				j := chunks.next(ep, len(txn.Changes)-i)
				*j = delivery.Job{
					DeliveryID: id, Endpoint: ep, EventID: ev.ID, EventType: ev.Type, EventTime: ev.CreatedAt,
					Payload: ev.Payload, Attempt: 1, MaxAttempts: maxAttempts, CommitTime: txn.CommitTime,
				}
				jobs = append(jobs, j)
			}
		}
	}
	// Recorded before dispatched: a result must find its delivery's row.
	if err := p.opts.Recorder.Add(ctx, rec); err != nil {
		return err
	}
	for _, j := range jobs {
		// Waits while the endpoint's queue is full of work it is doing:
		// the rest of a burst stays in the WAL until there is room.
		if err := p.opts.Dispatcher.Offer(ctx, j); err != nil {
			return err
		}
	}
	return nil
}

// jobChunks makes a transaction's jobs a few dozen at a time, in chunks
// kept per endpoint: one allocation per chunk instead of one per delivery.
// The jobs of a chunk share a lane, which runs them in order, so a chunk is
// let go about when its last job is done, and a slow endpoint's queue never
// holds on to other endpoints' payloads.
type jobChunks struct {
	eps    []*route.Endpoint
	chunks [][]delivery.Job
}

// maxChunkedEndpoints bounds the linear search; a transaction fanning out
// to more endpoints than this gets single jobs for the others.
const maxChunkedEndpoints = 16

// next returns a zero job for ep; rows is how many changes of the
// transaction are left, this one included, which bounds a new chunk.
func (c *jobChunks) next(ep *route.Endpoint, rows int) *delivery.Job {
	k := slices.Index(c.eps, ep)
	if k < 0 {
		if len(c.eps) == maxChunkedEndpoints {
			return new(delivery.Job)
		}
		c.eps, c.chunks = append(c.eps, ep), append(c.chunks, nil)
		k = len(c.eps) - 1
	}
	ch := c.chunks[k]
	if len(ch) == cap(ch) {
		ch = make([]delivery.Job, 0, min(32, max(rows, 1)))
	}
	ch = ch[:len(ch)+1]
	c.chunks[k] = ch
	return &ch[len(ch)-1]
}

func (p *Pipeline) endpointChanged(ctx context.Context, c *stream.Change) error {
	col := c.Rel.Column("id")
	if col < 0 || col >= len(c.Values) || c.Values[col] == nil {
		return errors.New("endpoint change without id")
	}
	id := string(c.Values[col])
	// Waiting deliveries learn of the change once the table has it.
	defer p.opts.Scheduler.EndpointChanged(id)
	var e *store.Endpoint
	var err error
	if c.Op != stream.Delete {
		// The row may have changed again since: the table is the truth.
		e, err = p.opts.Store.GetEndpoint(ctx, id, nil)
	}
	if c.Op == stream.Delete || errors.Is(err, store.ErrNotFound) {
		p.opts.Router.Remove(id)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reload endpoint %s: %w", id, err)
	}
	var oldURL string
	if old, ok := p.opts.Router.Table().Get(id); ok {
		oldURL = old.URL
	}
	if err := p.opts.Router.Upsert(e); err != nil {
		p.log.Error("endpoint cannot be used", "endpoint_id", id, "err", err)
		p.opts.Router.Remove(id)
		return nil
	}
	p.opts.Dispatcher.EndpointChanged(e, oldURL)
	p.log.Debug("endpoint changed", "endpoint_id", id, "active", e.Active)
	return nil
}

// decode makes an event of an outbox insert, or a dead letter saying why not
// and the reason's class for the metric.
func (p *Pipeline) decode(c *stream.Change, txn *stream.Txn, index int, now time.Time) (store.Event, *store.DeadLetter, string) {
	ob := p.opts.Outbox
	get := func(name string) ([]byte, bool) {
		if name == "" {
			return nil, false
		}
		i := c.Rel.Column(name)
		if i < 0 || i >= len(c.Values) {
			return nil, false
		}
		return c.Values[i], true
	}
	outboxID, _ := get(ob.ID)
	dead := func(class, format string, args ...any) (store.Event, *store.DeadLetter, string) {
		return store.Event{}, &store.DeadLetter{LSN: txn.CommitLSN, OutboxID: string(outboxID), Reason: fmt.Sprintf(format, args...), Raw: rawRow(c)}, class
	}
	typ, ok := get(ob.EventType)
	switch {
	case !ok:
		return dead(metrics.DeadOther, "outbox row has no column %q (outbox.columns.event_type)", ob.EventType)
	case len(bytes.TrimSpace(typ)) == 0:
		return dead(metrics.DeadEmptyType, "event type is empty or null")
	case len(typ) > 200:
		return dead(metrics.DeadOther, "event type is longer than 200 characters")
	case bytes.ContainsFunc(typ, func(r rune) bool { return r < ' ' || r == 0x7f }) || !utf8.Valid(typ):
		// It goes into a header (X-Webhook-Event) and the body.
		return dead(metrics.DeadOther, "event type contains control characters or invalid UTF-8")
	}
	payload, ok := get(ob.Payload)
	// A json or jsonb column holds valid JSON: Postgres checked it.
	validated := false
	if i := c.Rel.Column(ob.Payload); i >= 0 && i < len(c.Rel.Types) {
		validated = c.Rel.Types[i] == stream.OIDJSON || c.Rel.Types[i] == stream.OIDJSONB
	}
	switch {
	case !ok:
		return dead(metrics.DeadOther, "outbox row has no column %q (outbox.columns.payload)", ob.Payload)
	case payload == nil:
		return dead(metrics.DeadPayloadKind, "payload is SQL NULL")
	case len(payload) > ob.MaxPayloadBytes:
		return dead(metrics.DeadTooLarge, "payload of %d bytes exceeds outbox.max_payload_bytes (%d)", len(payload), ob.MaxPayloadBytes)
	case !validated && !json.Valid(payload):
		return dead(metrics.DeadInvalidJSON, "payload is not valid JSON")
	case bytes.Contains(payload, []byte(`\u0000`)):
		return dead(metrics.DeadInvalidJSON, `payload contains \u0000, which Postgres jsonb cannot store`)
	}
	if kind := jsonKind(payload); !slices.Contains(ob.PayloadKinds, kind) {
		return dead(metrics.DeadPayloadKind, "payload is a JSON %s; outbox.payload_kinds accepts %s", kind, strings.Join(ob.PayloadKinds, ", "))
	}
	ev := store.Event{
		ID: store.EventID(txn.CommitLSN, index), Type: p.typeName(typ), Payload: payload, OutboxID: string(outboxID),
		LSN: txn.CommitLSN, CreatedAt: txn.CommitTime, ReceivedAt: now, CommittedAt: txn.CommitTime,
	}
	if tenant, ok := get(ob.TenantID); ok && tenant != nil {
		ev.TenantID = string(tenant)
	}
	if created, ok := get(ob.CreatedAt); ok && created != nil {
		if t, err := parseTimestamp(created); err == nil {
			ev.CreatedAt = t
		}
	}
	return ev, nil, ""
}

// typeName is typ as a string: for a type seen before, the string every
// event of it shares, so that a burst of one type allocates none.
func (p *Pipeline) typeName(typ []byte) string {
	if s, ok := p.seen[string(typ)]; ok {
		return s
	}
	return string(typ)
}

// jsonKind names the kind of a valid JSON text by its first byte.
func jsonKind(b []byte) string {
	b = bytes.TrimLeft(b, " \t\r\n")
	switch {
	case len(b) == 0:
		return "null"
	case b[0] == '{':
		return "object"
	case b[0] == '[':
		return "array"
	case b[0] == '"':
		return "string"
	case b[0] == 't' || b[0] == 'f':
		return "boolean"
	case b[0] == 'n':
		return "null"
	default:
		return "number"
	}
}

// rawRow keeps a dead row's columns as a JSON object, each value capped so a
// huge bad payload does not become a huge dead letter.
func rawRow(c *stream.Change) []byte {
	const capBytes = 64 << 10
	row := make(map[string]any, len(c.Rel.Columns))
	for i, name := range c.Rel.Columns {
		if i >= len(c.Values) || c.Values[i] == nil {
			row[name] = nil
			continue
		}
		v := c.Values[i]
		if len(v) > capBytes {
			row[name] = string(bytes.ToValidUTF8(v[:capBytes], nil)) + "…(truncated, " + strconv.Itoa(len(v)) + " bytes)"
			continue
		}
		row[name] = string(bytes.ToValidUTF8(v, []byte("\uFFFD")))
	}
	b, err := json.Marshal(row)
	if err != nil {
		return []byte(`{}`)
	}
	// jsonb cannot hold \u0000 (json.Marshal escapes NUL bytes so).
	return bytes.ReplaceAll(b, []byte(`\u0000`), []byte(`\ufffd`))
}

// parseTimestamp reads timestamptz/timestamp text output (DateStyle ISO).
func parseTimestamp(b []byte) (time.Time, error) {
	if t, ok := parseISO(b); ok {
		return t, nil
	}
	s := string(b)
	for _, layout := range []string{"2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07:00:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}

// parseISO reads the common form "2006-01-02 15:04:05[.ffffff]±hh[:mm]"
// without time.Parse's layout interpretation, which cost a few percent of
// walhook's CPU at full speed; anything else is left to time.Parse.
func parseISO(s []byte) (time.Time, bool) {
	num := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range s[i : i+n] {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	if len(s) < 22 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if i < len(s) && s[i] == '.' {
		i++
		digits := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if digits < 9 {
				nsec = nsec*10 + int(s[i]-'0')
				digits++
			}
			i++
		}
		if digits == 0 {
			return time.Time{}, false
		}
		for ; digits < 9; digits++ {
			nsec *= 10
		}
	}
	if i >= len(s) || (s[i] != '+' && s[i] != '-') {
		return time.Time{}, false
	}
	sign := 1
	if s[i] == '-' {
		sign = -1
	}
	oh, ok := num(i+1, 2)
	if !ok {
		return time.Time{}, false
	}
	offset, i := oh*3600, i+3
	for _, unit := range []int{60, 1} { // optional :mm and :ss
		if i == len(s) {
			break
		}
		v, ok := num(i+1, 2)
		if s[i] != ':' || !ok {
			return time.Time{}, false
		}
		offset, i = offset+v*unit, i+3
	}
	if i != len(s) {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // 2026-02-31 and the like were normalised
		return time.Time{}, false
	}
	return t.Add(-time.Duration(sign*offset) * time.Second), true
}
