// Package stream reads row changes from a PostgreSQL logical replication slot
// (pgoutput) and hands them, one committed transaction at a time and in
// commit order, to a Handler.
//
// A Stream is parameterised by its slot and publications; nothing in it is
// process-wide, so several streams can run side by side.
//
// Invariants:
//   - The position confirmed to Postgres (the flush position of standby
//     status updates) is never past Handler.Durable(): a transaction is
//     confirmed only once the handler has recorded everything it produced.
//     The write position reports what was received; flush and apply report
//     what is durable. The update is encoded here, not by
//     pglogrepl.SendStandbyStatusUpdate: that replaces a zero flush with the
//     write position, so before anything is durable it would confirm all
//     that was received (at-most-once).
//   - A transaction is confirmed by its end LSN (the end of its commit
//     record), not its commit LSN, so it is not streamed again after a
//     restart.
//   - After a reconnect Postgres streams again from the confirmed position;
//     transactions at or below the last one handed to the handler (or the
//     resume position given to Run) are skipped, so the handler sees each
//     transaction once per Run.
//   - When nothing is in flight (no transaction open, everything handed over
//     is durable) the position of a keepalive may be confirmed too, so an
//     idle outbox does not pin WAL that other tables write.
//   - When the handler cannot take work (HandleTxn fails) the replication
//     connection is closed rather than left unread: a walsender whose client
//     neither reads nor confirms holds up a fast shutdown of Postgres.
package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Op is the kind of a change.
type Op uint8

// Kinds of changes.
const (
	Insert Op = iota + 1
	Update
	Delete
	Message // a transactional pg_logical_emit_message
)

// Relation describes a table as of the changes that reference it.
type Relation struct {
	ID        uint32
	Namespace string
	Name      string
	Columns   []string
	// Types are the columns' type OIDs: a json or jsonb column's values
	// were validated by Postgres already.
	Types []uint32
	index map[string]int
}

// Type OIDs of Postgres' JSON types.
const (
	OIDJSON  = 114
	OIDJSONB = 3802
)

// Column returns the position of a column, or -1.
func (r *Relation) Column(name string) int {
	if i, ok := r.index[name]; ok {
		return i
	}
	return -1
}

// Change is one decoded row change or logical message.
type Change struct {
	Op  Op
	Rel *Relation // nil for messages
	// Values are the new row's columns in text format (the old key for
	// deletes); nil is NULL or an unchanged TOAST value. They are the
	// change's own copy and stay valid after HandleTxn returns.
	Values [][]byte
	// Prefix and Content of a logical message.
	Prefix  string
	Content []byte
}

// Txn is one committed transaction.
type Txn struct {
	Xid        uint32
	CommitLSN  uint64
	EndLSN     uint64
	CommitTime time.Time
	// BeginAt is when walhook received the transaction's first message.
	BeginAt time.Time
	Changes []Change
	// slab backs the Values of Changes.
	slab [][]byte
	// size is about the memory the transaction's rows take, for the
	// read-ahead's bound.
	size int64
}

// Handler consumes transactions.
type Handler interface {
	// HandleTxn takes one committed transaction, in commit order, on a
	// goroutine of its own: Durable and Ready may be called meanwhile. An
	// error makes the stream disconnect, call Ready, and reconnect.
	HandleTxn(ctx context.Context, txn *Txn) error
	// Durable is the highest end LSN up to which everything handed over is
	// durably recorded.
	Durable() uint64
	// Ready blocks until the handler can take work again.
	Ready(ctx context.Context) error
}

// Options configure a Stream.
type Options struct {
	// DSN of the database (a regular connection string; replication=database
	// is added).
	DSN            string
	Slot           string
	Publications   []string
	StatusInterval time.Duration
	// ReadAhead bounds the memory of the rows received and decoded ahead of
	// the handler (0: 8 MiB). Reading ahead lets the server decode on while
	// the handler waits for room, notably past the WAL that walhook itself
	// wrote during a backlog, which it would otherwise decode only after
	// the backlog's last transaction was handed over.
	ReadAhead int64
	// Spill, when positive, is how many bytes of transactions may wait in
	// a file in SpillDir (empty: the system's temporary directory) once
	// the read-ahead's memory is full, so that the server never waits for
	// the handler. The file is unlinked at once and only ever a queue.
	Spill    int64
	SpillDir string
	Logger   *slog.Logger
	// OnConfirm, if set, is called with each confirmed position (metrics).
	OnConfirm func(lsn uint64)
}

// Stream is a resumable logical replication consumer.
type Stream struct {
	opts    Options
	handler Handler
	log     *slog.Logger

	connected    atomic.Bool
	received     atomic.Uint64             // highest WAL position received
	confirmed    atomic.Uint64             // highest flush position sent
	lastActivity atomic.Int64              // unix nanos of the last message from the server
	readAhead    atomic.Pointer[readAhead] // the session's; nil between sessions
	spilled      atomic.Int64              // bytes ever written to read-ahead files
}

// New makes a stream; Run starts it.
func New(opts Options, h Handler) *Stream {
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Second
	}
	if opts.ReadAhead <= 0 {
		opts.ReadAhead = 8 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Stream{opts: opts, handler: h, log: opts.Logger.With("slot", opts.Slot)}
}

// Status is a snapshot for health checks and metrics.
type Status struct {
	Connected    bool
	Received     uint64
	Confirmed    uint64
	LastActivity time.Time
	// ReadAheadBytes are taken by transactions read ahead in memory, and
	// SpillBytes by those waiting in the read-ahead's file: a backlog the
	// handler has yet to take. SpilledBytes were ever written to that file.
	ReadAheadBytes, SpillBytes, SpilledBytes int64
}

// Status reports the stream's state; safe from any goroutine.
func (s *Stream) Status() Status {
	st := Status{Connected: s.connected.Load(), Received: s.received.Load(), Confirmed: s.confirmed.Load(), SpilledBytes: s.spilled.Load()}
	if n := s.lastActivity.Load(); n != 0 {
		st.LastActivity = time.Unix(0, n)
	}
	if ra := s.readAhead.Load(); ra != nil {
		st.ReadAheadBytes, st.SpillBytes = ra.bytes.Load(), ra.spill.waiting()
	}
	return st
}

// Run streams until ctx ends, reconnecting with backoff after errors.
// Transactions ending at or below resumeAfter are skipped.
func (s *Stream) Run(ctx context.Context, resumeAfter uint64) error {
	backoff := 100 * time.Millisecond
	handled := resumeAfter
	for {
		if err := s.handler.Ready(ctx); err != nil {
			return err
		}
		start := time.Now()
		err := s.session(ctx, &handled)
		s.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 30*time.Second {
			backoff = 100 * time.Millisecond
		}
		s.log.Warn("replication stream interrupted; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff + rand.N(backoff/2+1)):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (s *Stream) session(ctx context.Context, handled *uint64) (err error) {
	cfg, err := pgconn.ParseConfig(s.opts.DSN)
	if err != nil {
		return fmt.Errorf("parse dsn: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "walhook-" + s.opts.Slot
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect for replication: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	args := []string{
		"proto_version '1'",
		"publication_names '" + strings.Join(s.opts.Publications, ",") + "'",
		"messages 'true'",
	}
	if err := pglogrepl.StartReplication(ctx, conn, s.opts.Slot, 0, pglogrepl.StartReplicationOptions{PluginArgs: args}); err != nil {
		return fmt.Errorf("start replication on slot %s: %w", s.opts.Slot, err)
	}
	s.connected.Store(true)
	s.log.Info("replication stream connected", "resume_after", pglogrepl.LSN(*handled))

	var (
		rels    = map[uint32]*Relation{}
		dec     decoder
		txn     *Txn
		lastEnd = *handled // end of the last transaction decoded
		walEnd  uint64     // server position from the last keepalive
	)

	// Transactions go to the handler through the read-ahead, in its own
	// goroutine, which owns *handled until it returns. The session waits
	// for it: the next session must not start while it still hands over.
	ra := newReadAhead(s.opts.ReadAhead)
	if s.opts.Spill > 0 {
		ra.spill = newSpill(s.opts.Spill, s.opts.SpillDir)
		ra.spill.written = &s.spilled
	}
	s.readAhead.Store(ra)
	hctx, stopHandler := context.WithCancel(ctx)
	quit := make(chan struct{})
	handlerDone := make(chan struct{}) // closed once herr is set
	var herr error
	go func() {
		herr = s.handle(hctx, ra, quit, handled)
		close(handlerDone)
		if herr != nil {
			// Wake the receive below at once rather than at its deadline
			// (after the close: the receive checks for it when woken).
			_ = conn.Conn().SetReadDeadline(time.Unix(1, 0))
		}
	}()
	handlerErr := func() error {
		select {
		case <-handlerDone:
			if herr == nil {
				return errors.New("handler stopped")
			}
			return herr
		default:
			return nil
		}
	}
	defer func() {
		// The handler finishes the transaction it has (as HandleTxn did when
		// it ran in this loop) and takes no other: what was read ahead is
		// streamed again after a reconnect. The connection goes first, so a
		// server shutting down is not held while the handler finishes.
		close(quit)
		_ = conn.Close(context.WithoutCancel(ctx))
		<-handlerDone
		stopHandler()
		s.readAhead.Store(nil)
		ra.spill.close()
		if herr != nil && ctx.Err() == nil && !errors.Is(err, herr) {
			s.log.Warn("handing over a transaction failed as the stream stopped", "err", herr)
		}
	}()
	sendStatus := func() error {
		durable := s.handler.Durable()
		flush := durable
		// Idle: everything handed over is durable and no transaction is open,
		// so the server's position holds nothing for us.
		if txn == nil && durable >= lastEnd && walEnd > flush {
			flush = walEnd
		}
		if c := s.confirmed.Load(); flush < c {
			flush = c
		}
		write := max(s.received.Load(), flush)
		if err := sendStandbyStatus(conn, write, flush, time.Now()); err != nil {
			return fmt.Errorf("send standby status: %w", err)
		}
		if flush > s.confirmed.Load() {
			s.confirmed.Store(flush)
			if s.opts.OnConfirm != nil {
				s.opts.OnConfirm(flush)
			}
		}
		return nil
	}

	// Messages are received without a context: pgconn would watch one per
	// message (a channel and an AfterFunc each). The connection's read
	// deadline wakes the loop once per status interval instead, and the
	// end of ctx moves that deadline to the past.
	var at time.Time
	arm := func() error {
		at = time.Now().Add(s.opts.StatusInterval)
		if err := conn.Conn().SetReadDeadline(at); err != nil {
			return fmt.Errorf("set read deadline: %w", err)
		}
		return nil
	}
	if err := arm(); err != nil {
		return err
	}
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.Conn().SetReadDeadline(time.Unix(1, 0)) })
	defer stopWatch()
	done := ctx.Done()
	// A server shutting down waits for us to confirm all it sent, while
	// the handler may be unable to record (its connections were closed by
	// that same shutdown): disconnecting breaks the deadlock, and the
	// session loop reconnects once the handler is ready.
	var stalledSince time.Time
	lastDurable := s.handler.Durable()
	// tick is due once per status interval: report, and give up on a
	// handler that records nothing. stop: the session is over (ctx).
	tick := func(now time.Time) (stop bool, err error) {
		if err := sendStatus(); err != nil {
			return false, err
		}
		if err := arm(); err != nil {
			return false, err
		}
		if ctx.Err() != nil {
			return true, nil // ended before arm: its deadline replaced the cut
		}
		switch d := s.handler.Durable(); {
		case d >= lastEnd || d != lastDurable:
			stalledSince, lastDurable = time.Time{}, d
		case stalledSince.IsZero():
			stalledSince = now
		case now.Sub(stalledSince) > stallGrace && !ready(ctx, s.handler),
			now.Sub(stalledSince) > maxStall: // ready, but stuck: do not keep the server waiting
			return false, fmt.Errorf("%w: nothing recorded for %s", errStalled, now.Sub(stalledSince).Round(time.Second))
		}
		return false, nil
	}
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	// enqueue hands t to the handler, first waiting while the read-ahead
	// is full; status updates and stall checks go on meanwhile.
	enqueue := func(t *Txn) (stop bool, err error) {
		for {
			placed, err := ra.place(t)
			if errors.Is(err, errSpillOff) {
				s.log.Warn("reading ahead in memory only", "err", err)
			} else if err != nil {
				return false, err
			}
			if placed {
				return false, nil
			}
			wait.Reset(time.Until(at))
			select {
			case <-ra.room:
			case <-wait.C:
				if stop, err := tick(time.Now()); stop || err != nil {
					return stop, err
				}
			case <-done:
				return true, nil
			case <-handlerDone:
				return false, handlerErr()
			}
		}
	}
	for {
		if now := time.Now(); now.After(at) {
			if stop, err := tick(now); stop || err != nil {
				return err
			}
		}
		// After tick: its new deadline may have replaced the handler's cut.
		if err := handlerErr(); err != nil {
			return err
		}
		raw, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if err := handlerErr(); err != nil {
				return err
			}
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive: %w", err)
		}
		// Messages already buffered arrive without a read: stop between
		// them too, as a context on each receive did.
		select {
		case <-done:
			return nil
		default:
		}
		s.lastActivity.Store(time.Now().UnixNano())
		var data []byte
		switch msg := raw.(type) {
		case *pgproto3.CopyData:
			data = msg.Data
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication: %w", pgconn.ErrorResponseToPgError(msg))
		default:
			continue
		}
		if len(data) == 0 {
			continue
		}
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
			if err != nil {
				return fmt.Errorf("parse keepalive: %w", err)
			}
			walEnd = uint64(ka.ServerWALEnd)
			// The server has sent everything before its position.
			if walEnd > s.received.Load() {
				s.received.Store(walEnd)
			}
			if ka.ReplyRequested {
				if err := sendStatus(); err != nil {
					return err
				}
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(data[1:])
			if err != nil {
				return fmt.Errorf("parse xlogdata: %w", err)
			}
			// In logical replication WALStart is the LSN of the decoded
			// record (the end of the commit record for a Commit), not the
			// start of len(WALData) bytes of WAL: adding the length, as
			// the pglogrepl demo does, reports positions never sent.
			if pos := uint64(xld.WALStart); pos > s.received.Load() {
				s.received.Store(pos)
			}
			done, err := s.decode(&dec, xld.WALData, rels, &txn)
			if err != nil {
				return err
			}
			if done == nil {
				continue
			}
			lastEnd = max(lastEnd, done.EndLSN)
			if stop, err := enqueue(done); stop || err != nil {
				return err
			}
		}
	}
}

// handle hands the transactions read ahead to the handler, in order, until
// quit is closed, ctx ends or the handler fails. *handled is the end of the
// last one handed over.
func (s *Stream) handle(ctx context.Context, ra *readAhead, quit <-chan struct{}, handled *uint64) error {
	var last uint64 // end of the last transaction taken in this session
	for {
		select { // first: a queued transaction must not win over the end
		case <-quit:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		t, fromSpill, err := ra.next(ctx, quit)
		if err != nil || t == nil {
			return err
		}
		// Commit order is what makes skipping by *handled safe: a bug
		// that broke it would drop transactions, so it stops the session.
		if t.EndLSN <= last {
			return fmt.Errorf("transaction %d (end %s) read ahead after one ending at %s", t.Xid, pglogrepl.LSN(t.EndLSN), pglogrepl.LSN(last))
		}
		last = t.EndLSN
		if t.EndLSN > *handled { // not streamed again after a reconnect
			if err := s.handler.HandleTxn(ctx, t); err != nil {
				return fmt.Errorf("handle transaction %d: %w", t.Xid, err)
			}
			*handled = t.EndLSN
		}
		ra.pop(t, fromSpill)
	}
}

// readAhead is the queue of decoded transactions between a session's
// receiving loop and its handler, bounded by about the memory they take and
// by a length. One transaction larger than the whole bound still passes
// when the queue is empty.
type readAhead struct {
	limit int64
	bytes atomic.Int64
	q     chan *Txn
	room  chan struct{} // a transaction left the queue or the spill
	// spill, when not nil (a nil one holds nothing and takes nothing),
	// takes the transactions past the memory bound,
	// and all that follow them until it is drained; spilled signals the
	// handler that it holds some.
	spill   *spill
	spilled chan struct{}
	// mu makes "memory or spill" one decision on both sides: without it
	// the handler could find memory empty, the reader then queue one
	// transaction in memory and spill the next, and the handler take the
	// spilled one first.
	mu sync.Mutex
}

const minTxnBytes = 512

// maxReadAheadTxns bounds the queue's length (and its channel's size).
const maxReadAheadTxns = 1 << 16

func newReadAhead(limit int64) *readAhead {
	return &readAhead{limit: limit, q: make(chan *Txn, min(limit/minTxnBytes+1, maxReadAheadTxns)), room: make(chan struct{}, 1),
		spilled: make(chan struct{}, 1)}
}

// place queues t in memory, or in the spill when memory is full or the
// spill holds earlier transactions. It returns false when neither has room.
func (ra *readAhead) place(t *Txn) (bool, error) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if !ra.spill.active() && ra.fits(t) {
		ra.push(t) // does not block: fits checked the channel's room
		return true, nil
	}
	ok, err := ra.spill.put(t)
	if ok {
		signal(ra.spilled)
	}
	return ok, err
}

// taken returns, without waiting, the oldest transaction read ahead: from
// memory while it holds any (it is older than the spill's), else from the
// spill.
func (ra *readAhead) taken() (t *Txn, fromSpill bool, err error) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if len(ra.q) > 0 {
		return <-ra.q, false, nil // only this caller receives
	}
	t, err = ra.spill.take()
	return t, t != nil, err
}

// next returns the oldest transaction read ahead, waiting for one until
// quit or ctx ends (nil then). fromSpill says it was read back from the
// spill, so that its bytes were never counted in memory.
func (ra *readAhead) next(ctx context.Context, quit <-chan struct{}) (t *Txn, fromSpill bool, err error) {
	for {
		if t, fromSpill, err = ra.taken(); t != nil || err != nil {
			return t, fromSpill, err
		}
		select {
		case t = <-ra.q:
			// Pushed while the spill held nothing: anything spilled
			// since is newer.
			return t, false, nil
		case <-ra.spilled:
		case <-quit:
			return nil, false, nil
		case <-ctx.Done():
			return nil, false, nil
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func txnBytes(t *Txn) int64 { return max(t.size, minTxnBytes) }

func (ra *readAhead) fits(t *Txn) bool {
	if len(ra.q) == cap(ra.q) {
		return false
	}
	b := ra.bytes.Load()
	return b == 0 || b+txnBytes(t) <= ra.limit
}

// push queues t; the caller checked fits, so the channel has room (only
// the caller adds to it).
func (ra *readAhead) push(t *Txn) {
	ra.bytes.Add(txnBytes(t))
	ra.q <- t
}

// pop accounts for t, handed over; fromSpill: it came from the spill.
func (ra *readAhead) pop(t *Txn, fromSpill bool) {
	if !fromSpill {
		ra.bytes.Add(-txnBytes(t))
	}
	signal(ra.room)
}

// decode applies one pgoutput message; it returns the transaction when the
// message was its commit. data is only valid until the next receive: what
// the transaction keeps is copied.
func (s *Stream) decode(dec *decoder, data []byte, rels map[uint32]*Relation, txn **Txn) (*Txn, error) {
	m, err := dec.decode(data)
	if err != nil {
		return nil, err
	}
	switch m.typ {
	case msgRelation:
		r := &Relation{ID: m.relID, Namespace: string(m.namespace), Name: string(m.name),
			Columns: make([]string, len(m.relCols)), Types: make([]uint32, len(m.relCols)), index: make(map[string]int, len(m.relCols))}
		for i, c := range m.relCols {
			r.Columns[i] = string(c.name)
			r.Types[i] = c.typeOID
			r.index[r.Columns[i]] = i
		}
		rels[m.relID] = r
	case msgBegin:
		if *txn != nil {
			return nil, fmt.Errorf("begin of transaction %d inside transaction %d", m.xid, (*txn).Xid)
		}
		*txn = &Txn{Xid: m.xid, CommitTime: m.commitTime(), BeginAt: time.Now(), size: int64(unsafe.Sizeof(Txn{}))}
	case msgCommit:
		t := *txn
		if t == nil {
			return nil, errors.New("commit without begin")
		}
		*txn = nil
		t.CommitLSN, t.EndLSN = m.lsn, m.endLSN
		return t, nil
	case msgInsert:
		return nil, addRow(*txn, rels, Insert, m.relID, &m.newTuple, data)
	case msgUpdate:
		return nil, addRow(*txn, rels, Update, m.relID, &m.newTuple, data)
	case msgDelete:
		return nil, addRow(*txn, rels, Delete, m.relID, &m.oldTuple, data)
	case msgMessage:
		// Non-transactional messages belong to no transaction: nothing
		// confirms them, so they are dropped.
		if m.flags == 1 && *txn != nil {
			// Copied: the content points into the receive buffer, which
			// the transaction's next message overwrites.
			c := Change{Op: Message, Prefix: string(m.name), Content: append([]byte{}, m.content...)}
			(*txn).Changes = append((*txn).Changes, c)
			(*txn).size += int64(len(c.Prefix)+len(c.Content)) + rowOverhead(0)
		}
	}
	// Origin, Type and Truncate carry nothing walhook uses (the
	// publications do not publish truncate).
	return nil, nil
}

// rowOverhead is about the memory a row takes besides its copied bytes: its
// Change and its values, counted twice for the spare room of the slices
// that hold them.
func rowOverhead(columns int) int64 {
	return 2 * (int64(unsafe.Sizeof(Change{})) + int64(columns)*int64(unsafe.Sizeof([]byte(nil))))
}

func addRow(txn *Txn, rels map[uint32]*Relation, op Op, relID uint32, tuple *tuple, data []byte) error {
	if txn == nil {
		return errors.New("row change outside a transaction")
	}
	rel, ok := rels[relID]
	if !ok {
		return fmt.Errorf("row change for unknown relation %d", relID)
	}
	txn.Changes = append(txn.Changes, Change{Op: op, Rel: rel, Values: tuple.values(data, &txn.slab)})
	txn.size += int64(tuple.end-tuple.start) + rowOverhead(len(tuple.cols))
	return nil
}

// sendStandbyStatus sends a standby status update with flush and apply as
// given, zero included: Postgres ignores a zero (invalid) flush position,
// which is what "nothing durable yet" must mean. pglogrepl's sender would
// send the write position instead.
func sendStandbyStatus(conn *pgconn.PgConn, write, flush uint64, now time.Time) error {
	const y2k = 946684800 * 1000000 // Postgres' epoch in Unix microseconds
	data := make([]byte, 0, 34)
	data = append(data, pglogrepl.StandbyStatusUpdateByteID)
	data = binary.BigEndian.AppendUint64(data, write)
	data = binary.BigEndian.AppendUint64(data, flush) // flush
	data = binary.BigEndian.AppendUint64(data, flush) // apply
	data = binary.BigEndian.AppendUint64(data, uint64(now.UnixMicro()-y2k))
	data = append(data, 0) // no reply requested
	buf, err := (&pgproto3.CopyData{Data: data}).Encode(nil)
	if err != nil {
		return err
	}
	return conn.Frontend().SendUnbufferedEncodedCopyData(buf)
}

// stallGrace is how long transactions may wait unrecorded, with the handler
// not ready, before the stream lets go of the server.
const stallGrace = 2 * time.Second

// maxStall is how long transactions may wait unrecorded even with a handler
// that says it is ready: longer, and the handler is stuck.
const maxStall = 2 * time.Minute

var errStalled = errors.New("handler cannot record; disconnecting so the server is not held")

// ready reports, without waiting, whether the handler can take work.
func ready(ctx context.Context, h Handler) bool {
	now, cancel := context.WithCancel(ctx)
	cancel()
	return h.Ready(now) == nil
}
