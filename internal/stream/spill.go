package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// spill is the read-ahead's overflow: the transactions that arrive while
// the memory bound is reached are written, in order, to a file and read back
// in order. Reading ahead is what lets the server go on decoding while the
// handler is busy; past the memory bound the server would wait, and after
// a large backlog it would still have to work through the WAL the handler
// wrote meanwhile (walhook's own records) before the next event reaches
// the stream. The file is unlinked as soon as it is made, so nothing is
// left behind by a crash; it is only a queue, never a record: positions
// are confirmed by what the handler made durable, as without it.
type spill struct {
	limit int64 // bytes the file may hold
	dir   string

	mu      sync.Mutex
	f       *os.File // nil until the first transaction is written
	wOff    int64    // end of what was written
	rOff    int64    // start of the next transaction to read
	pending int      // transactions written and not read
	// Changes refer to their relation by index into rels: a Relation is
	// immutable, and a new one replaces it in the session's map when the
	// table changes, so each written change keeps the one it had.
	rels   []*Relation
	relIdx map[*Relation]uint32
	buf    []byte
	// full: a transaction found no room; none is tried again until the
	// file is drained, which is when room comes back.
	full bool
	// off: writing failed (a full disk, say); the read-ahead goes on in
	// memory only, as without a spill, for the rest of the session.
	off bool
	// written, when not nil, counts the bytes ever written, for metrics.
	written *atomic.Int64
}

// errSpillOff reports, once, that the spill stopped being used.
var errSpillOff = errors.New("read-ahead file given up; reading ahead in memory only")

func newSpill(limit int64, dir string) *spill {
	return &spill{limit: limit, dir: dir, relIdx: map[*Relation]uint32{}}
}

// active reports whether transactions wait in the file: until they are
// read, later ones must follow them there.
func (sp *spill) active() bool {
	if sp == nil {
		return false
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.pending > 0
}

// waiting is how many bytes of transactions wait in the file.
func (sp *spill) waiting() int64 {
	if sp == nil {
		return 0
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.wOff - sp.rOff
}

// put writes t after the transactions already in the file. It returns
// false, writing nothing, when the file has no room for it.
//
// It fails only with errSpillOff wrapping the cause, after which it
// refuses every transaction: the file is an optimisation, and a session
// must not end over it.
func (sp *spill) put(t *Txn) (bool, error) {
	if sp == nil {
		return false, nil
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.off || sp.full {
		return false, nil
	}
	rec, err := sp.encode(sp.buf[:0], t)
	if err != nil {
		return false, sp.giveUp(err)
	}
	sp.buf = rec
	if cap(sp.buf) > 1<<20 {
		sp.buf = nil // one huge transaction does not keep its buffer
	}
	if sp.wOff > 0 && sp.wOff+int64(len(rec)) > sp.limit {
		sp.full = true
		return false, nil // the first transaction always fits
	}
	if sp.f == nil {
		f, err := os.CreateTemp(sp.dir, "walhook-read-ahead-*")
		if err != nil {
			return false, sp.giveUp(err)
		}
		// Unlinked at once: the open file is all that is needed, and a
		// crash leaves nothing to clean up.
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return false, sp.giveUp(err)
		}
		sp.f = f
	}
	if _, err := sp.f.WriteAt(rec, sp.wOff); err != nil {
		return false, sp.giveUp(err)
	}
	sp.wOff += int64(len(rec))
	if sp.written != nil {
		sp.written.Add(int64(len(rec)))
	}
	sp.pending++
	return true, nil
}

// giveUp turns the spill off (what it holds is still read back); under mu.
func (sp *spill) giveUp(err error) error {
	sp.off = true
	return fmt.Errorf("%w: %w", errSpillOff, err)
}

// take reads the oldest transaction of the file; nil when there is none.
func (sp *spill) take() (*Txn, error) {
	if sp == nil {
		return nil, nil
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.pending == 0 {
		return nil, nil
	}
	var head [4]byte
	if _, err := sp.f.ReadAt(head[:], sp.rOff); err != nil {
		return nil, fmt.Errorf("read the read-ahead file: %w", err)
	}
	// Each transaction gets its own buffer: its values point into it and
	// stay valid after the handler returns, as a decoded one's do.
	rec := make([]byte, binary.LittleEndian.Uint32(head[:]))
	if _, err := sp.f.ReadAt(rec, sp.rOff+4); err != nil {
		return nil, fmt.Errorf("read the read-ahead file: %w", err)
	}
	t, err := sp.decode(rec)
	if err != nil {
		return nil, fmt.Errorf("read the read-ahead file at %d: %w", sp.rOff, err)
	}
	sp.rOff += 4 + int64(len(rec))
	sp.pending--
	if sp.pending == 0 {
		// Drained: start the file over, and the relations with it.
		if err := sp.f.Truncate(0); err != nil {
			return nil, fmt.Errorf("empty the read-ahead file: %w", err)
		}
		sp.wOff, sp.rOff, sp.full = 0, 0, false
		clear(sp.relIdx)
		clear(sp.rels)
		sp.rels = sp.rels[:0]
	}
	return t, nil
}

// close drops the file and what it holds: after a session, the server
// streams again what was not made durable.
func (sp *spill) close() {
	if sp == nil {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.f != nil {
		sp.f.Close()
		sp.f = nil
	}
	sp.pending, sp.wOff, sp.rOff = 0, 0, 0
}

// A transaction's record: its length (4 bytes, not counted), then xid,
// commit and end LSNs, commit and begin times, size, the number of changes,
// and each change: op, relation index + 1 (0: none), its values (count,
// then each as a length, -1 for NULL, and the bytes), prefix and content.
// Little-endian: the file never leaves this process.

const nilLen = math.MaxUint32 // a NULL value's (or nil content's) length

func (sp *spill) encode(b []byte, t *Txn) ([]byte, error) {
	le := binary.LittleEndian
	b = append(b, 0, 0, 0, 0) // length, set below
	b = le.AppendUint32(b, t.Xid)
	b = le.AppendUint64(b, t.CommitLSN)
	b = le.AppendUint64(b, t.EndLSN)
	b = le.AppendUint64(b, uint64(t.CommitTime.UnixNano()))
	b = le.AppendUint64(b, uint64(t.BeginAt.UnixNano()))
	b = le.AppendUint64(b, uint64(t.size))
	b = le.AppendUint32(b, uint32(len(t.Changes)))
	for i := range t.Changes {
		c := &t.Changes[i]
		b = append(b, byte(c.Op))
		var rel uint32
		if c.Rel != nil {
			idx, ok := sp.relIdx[c.Rel]
			if !ok {
				idx = uint32(len(sp.rels))
				sp.rels = append(sp.rels, c.Rel)
				sp.relIdx[c.Rel] = idx
			}
			rel = idx + 1
		}
		b = le.AppendUint32(b, rel)
		b = le.AppendUint32(b, uint32(len(c.Values)))
		for _, v := range c.Values {
			b = appendBytes(b, v)
		}
		b = appendBytes(b, []byte(c.Prefix))
		b = appendBytes(b, c.Content)
	}
	if len(b)-4 > math.MaxInt32 {
		return nil, errors.New("transaction too large for the read-ahead file")
	}
	le.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.LittleEndian.AppendUint32(b, nilLen)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// decode rebuilds a transaction from its record (without the length), its
// values pointing into rec.
func (sp *spill) decode(rec []byte) (*Txn, error) {
	r := recordReader{b: rec}
	t := &Txn{Xid: r.u32(), CommitLSN: r.u64(), EndLSN: r.u64()}
	t.CommitTime = time.Unix(0, int64(r.u64()))
	t.BeginAt = time.Unix(0, int64(r.u64()))
	t.size = int64(r.u64())
	n := r.u32()
	if r.err != nil || uint64(n) > uint64(len(rec)) {
		return nil, fmt.Errorf("bad transaction header: %w", errors.Join(r.err, io.ErrUnexpectedEOF))
	}
	t.Changes = make([]Change, n)
	for i := range t.Changes {
		c := &t.Changes[i]
		c.Op = Op(r.u8())
		if rel := r.u32(); rel > 0 {
			if int(rel) > len(sp.rels) {
				return nil, fmt.Errorf("change %d: unknown relation %d", i, rel)
			}
			c.Rel = sp.rels[rel-1]
		}
		nv := r.u32()
		if r.err != nil || uint64(nv) > uint64(len(rec)) {
			return nil, fmt.Errorf("change %d: %w", i, errors.Join(r.err, io.ErrUnexpectedEOF))
		}
		if nv > 0 {
			c.Values = make([][]byte, nv)
			for j := range c.Values {
				c.Values[j] = r.bytes()
			}
		}
		c.Prefix = string(r.bytes())
		c.Content = r.bytes()
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the last change", len(r.b))
	}
	return t, nil
}

// recordReader reads a record's fields; the first short read sets err and
// every later read returns zero.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) take(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *recordReader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *recordReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *recordReader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

// bytes reads a length and that many bytes; nil for nilLen.
func (r *recordReader) bytes() []byte {
	n := r.u32()
	if n == nilLen || r.err != nil {
		return nil
	}
	return r.take(int(n))
}
