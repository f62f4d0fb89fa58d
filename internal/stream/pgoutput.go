package stream

// A decoder for the pgoutput messages of protocol version 1 ("Logical
// Replication Message Formats" in the PostgreSQL documentation).
//
// It exists because pglogrepl.Parse allocates a struct per message, one per
// tuple column and one per column value (copied byte by byte), and panics on
// malformed input. This decoder allocates nothing: a decoded message is a
// view into the buffer it was decoded from (column values are offsets), and
// the decoder's own slices are reused from message to message. What has to
// outlive the buffer — pgconn reuses it on the next receive — is copied by
// the caller, once per message (see tuple.values).
//
// Malformed input is an error, never a panic. Where the protocol is exact
// this decoder is strict (an unknown column kind, an update without its 'N'
// marker), as Postgres' own apply worker is; trailing bytes are ignored, as
// pglogrepl and Postgres ignore them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// pgoutput message types of protocol version 1.
const (
	msgBegin    = 'B'
	msgCommit   = 'C'
	msgOrigin   = 'O'
	msgRelation = 'R'
	msgType     = 'Y'
	msgInsert   = 'I'
	msgUpdate   = 'U'
	msgDelete   = 'D'
	msgTruncate = 'T'
	msgMessage  = 'M'
)

// Kinds of tuple columns.
const (
	colNull      = 'n'
	colUnchanged = 'u' // an unchanged TOASTed value, not sent
	colText      = 't'
	colBinary    = 'b'
)

// Tuple markers of row messages.
const (
	tupleNew = 'N'
	tupleKey = 'K' // old key columns (REPLICA IDENTITY index)
	tupleOld = 'O' // whole old row (REPLICA IDENTITY FULL)
)

// Why a message could not be decoded; decodeError wraps one of these.
var (
	errEmpty        = errors.New("empty message")
	errUnsupported  = errors.New("unsupported message type")
	errShort        = errors.New("message ends early")
	errUnterminated = errors.New("string without terminating NUL")
	errColumnKind   = errors.New("unknown tuple column kind")
	errTupleMarker  = errors.New("unexpected tuple marker")
)

// decodeError says which message failed where.
type decodeError struct {
	typ  byte
	off  int    // offset in the message, type byte included
	need uint64 // with errShort: bytes the field needed from off
	err  error
}

func (e *decodeError) Error() string {
	if e.err == errShort {
		return fmt.Sprintf("decode pgoutput message %q at byte %d: %v (field needs %d bytes)", e.typ, e.off, e.err, e.need)
	}
	return fmt.Sprintf("decode pgoutput message %q at byte %d: %v", e.typ, e.off, e.err)
}

func (e *decodeError) Unwrap() error { return e.err }

// column is one column of a tuple. A text or binary value is
// data[off:off+n] of the message it was decoded from.
type column struct {
	kind byte
	off  int
	n    int
}

// tuple is the TupleData of a row message.
type tuple struct {
	cols []column
	// start and end delimit the tuple's columns in the message, so that
	// one copy keeps all of its values.
	start, end int
}

// values returns the tuple's values: nil for NULL and unchanged TOAST,
// otherwise sub-slices of one copy of the tuple's bytes. The copy is needed
// because the message buffer is reused on the next receive while a value
// lives as long as the transaction, or the event made of it; one copy per
// tuple rather than one per column keeps it to one allocation. Capacities
// are clipped so that appending to one value cannot overwrite the next.
//
// The slice of values itself is cut from *slab, which the transaction's
// rows share, rather than made per row; its capacity is clipped too. Each
// new slab is twice the last, from four rows' worth up to 1,024 values, so
// a one-row transaction takes little and a big one a few allocations.
func (t *tuple) values(data []byte, slab *[][]byte) [][]byte {
	n := len(t.cols)
	if cap(*slab)-len(*slab) < n {
		*slab = make([][]byte, 0, max(n, min(max(2*cap(*slab), 4*n), 1024)))
	}
	at := len(*slab)
	*slab = (*slab)[:at+n]
	vals := (*slab)[at : at+n : at+n]
	var buf []byte
	for i, c := range t.cols {
		if c.kind != colText && c.kind != colBinary {
			continue
		}
		if buf == nil {
			// make, not append: an empty text value must stay non-nil.
			buf = make([]byte, t.end-t.start)
			copy(buf, data[t.start:t.end])
		}
		o := c.off - t.start
		vals[i] = buf[o : o+c.n : o+c.n]
	}
	return vals
}

// relColumn is one column of a Relation message.
type relColumn struct {
	flags   byte // 1: part of the replica identity key
	name    []byte
	typeOID uint32
	typmod  int32
}

// message is one decoded message; which fields are set depends on typ.
// Byte slices point into the decoded buffer.
type message struct {
	typ byte

	// Begin: final LSN, commit time (microseconds since 2000-01-01), xid.
	// Commit: flags, commit LSN, end LSN, commit time.
	// Origin: lsn (the origin's commit LSN) and name.
	// Message: flags (1: transactional), lsn, name (the prefix), content.
	lsn, endLSN uint64
	time        int64
	xid         uint32
	flags       byte

	// Relation: relID, namespace, name, flags (replica identity), relCols.
	// Type: relID (the type's OID), namespace, name.
	relID     uint32
	namespace []byte
	name      []byte
	relCols   []relColumn

	// Insert: relID, newTuple. Update: relID, oldKind ('K', 'O' or 0),
	// oldTuple, newTuple. Delete: relID, oldKind, oldTuple.
	oldKind  byte
	oldTuple tuple
	newTuple tuple

	// Truncate: flags (options), relIDs.
	relIDs []uint32

	content []byte
}

// commitTime converts the message's timestamp as pglogrepl does.
func (m *message) commitTime() time.Time { return pgTime(m.time) }

// pgTime converts microseconds since 2000-01-01 UTC.
func pgTime(us int64) time.Time {
	const y2k = 946684800 * 1000000 // 2000-01-01 in microseconds since 1970
	return time.Unix(0, (y2k+us)*1000)
}

// decoder decodes messages into the one message it holds, reusing its
// slices; a decoded message is valid until the next decode and while the
// buffer is unchanged.
type decoder struct {
	m message
}

// reader reads big-endian fields; the first read past the end sets err and
// every later read returns zero values.
type reader struct {
	b    []byte
	off  int
	need uint64 // what the failed read needed, for the error
	err  error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) has(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || len(r.b)-r.off < n {
		r.short(uint64(n))
		return false
	}
	return true
}

func (r *reader) short(need uint64) {
	if r.err == nil {
		r.need = need
		r.err = errShort
	}
}

func (r *reader) u8() byte {
	if !r.has(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if !r.has(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if !r.has(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64() uint64 {
	if !r.has(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

// str reads a NUL-terminated string without its NUL.
func (r *reader) str() []byte {
	if r.err != nil {
		return nil
	}
	for i := r.off; i < len(r.b); i++ {
		if r.b[i] == 0 {
			s := r.b[r.off:i]
			r.off = i + 1
			return s
		}
	}
	r.fail(errUnterminated)
	return nil
}

// tuple reads TupleData into t, reusing t.cols.
func (r *reader) tuple(t *tuple) {
	n := int(r.u16())
	t.cols = t.cols[:0]
	t.start = r.off
	for i := 0; i < n && r.err == nil; i++ {
		c := column{kind: r.u8()}
		switch c.kind {
		case colText, colBinary:
			// Lengths are uint32: int keeps them positive on 64-bit.
			c.n = int(r.u32())
			c.off = r.off
			if r.has(c.n) {
				r.off += c.n
			}
		case colNull, colUnchanged:
		default:
			if r.err == nil {
				r.off-- // point at the kind
				r.fail(errColumnKind)
			}
		}
		t.cols = append(t.cols, c)
	}
	t.end = r.off
}

// decode decodes one message (the XLogData payload, type byte first).
func (d *decoder) decode(data []byte) (*message, error) {
	if len(data) == 0 {
		return nil, &decodeError{err: errEmpty}
	}
	m := &d.m
	// Keep the reusable slices, clear the rest.
	*m = message{
		typ:      data[0],
		relCols:  m.relCols[:0],
		oldTuple: tuple{cols: m.oldTuple.cols[:0]},
		newTuple: tuple{cols: m.newTuple.cols[:0]},
		relIDs:   m.relIDs[:0],
	}
	r := reader{b: data, off: 1}
	switch m.typ {
	case msgBegin:
		m.lsn = r.u64()
		m.time = int64(r.u64())
		m.xid = r.u32()
	case msgCommit:
		m.flags = r.u8()
		m.lsn = r.u64()
		m.endLSN = r.u64()
		m.time = int64(r.u64())
	case msgOrigin:
		m.lsn = r.u64()
		m.name = r.str()
	case msgRelation:
		m.relID = r.u32()
		m.namespace = r.str()
		m.name = r.str()
		m.flags = r.u8()
		n := int(r.u16())
		for i := 0; i < n && r.err == nil; i++ {
			c := relColumn{flags: r.u8(), name: r.str(), typeOID: r.u32(), typmod: int32(r.u32())}
			m.relCols = append(m.relCols, c)
		}
	case msgType:
		m.relID = r.u32()
		m.namespace = r.str()
		m.name = r.str()
	case msgInsert:
		m.relID = r.u32()
		if k := r.u8(); k != tupleNew && r.err == nil {
			r.off--
			r.fail(errTupleMarker)
		}
		r.tuple(&m.newTuple)
	case msgUpdate:
		m.relID = r.u32()
		k := r.u8()
		if k == tupleKey || k == tupleOld {
			m.oldKind = k
			r.tuple(&m.oldTuple)
			k = r.u8()
		}
		if k != tupleNew && r.err == nil {
			r.off--
			r.fail(errTupleMarker)
		}
		r.tuple(&m.newTuple)
	case msgDelete:
		m.relID = r.u32()
		m.oldKind = r.u8()
		if m.oldKind != tupleKey && m.oldKind != tupleOld && r.err == nil {
			r.off--
			r.fail(errTupleMarker)
		}
		r.tuple(&m.oldTuple)
	case msgTruncate:
		n := r.u32()
		m.flags = r.u8()
		// n comes from the wire: check it against the bytes there are
		// before it decides how much to append.
		if r.err == nil && uint64(n)*4 > uint64(len(data)-r.off) {
			r.short(uint64(n) * 4)
		}
		for i := uint32(0); i < n && r.err == nil; i++ {
			m.relIDs = append(m.relIDs, r.u32())
		}
	case msgMessage:
		m.flags = r.u8()
		m.lsn = r.u64()
		m.name = r.str()
		n := int(r.u32())
		if r.has(n) {
			m.content = data[r.off : r.off+n]
			r.off += n
		}
	default:
		return nil, &decodeError{typ: m.typ, err: errUnsupported}
	}
	if r.err != nil {
		return nil, &decodeError{typ: m.typ, off: r.off, need: r.need, err: r.err}
	}
	return m, nil
}
