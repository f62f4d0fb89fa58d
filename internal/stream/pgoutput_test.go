package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// wire builds pgoutput messages byte by byte, as pgoutput writes them.
type wire []byte

func msgOf(typ byte) wire          { return wire{typ} }
func (w wire) u8(v byte) wire      { return append(w, v) }
func (w wire) u16(v uint16) wire   { return binary.BigEndian.AppendUint16(w, v) }
func (w wire) u32(v uint32) wire   { return binary.BigEndian.AppendUint32(w, v) }
func (w wire) u64(v uint64) wire   { return binary.BigEndian.AppendUint64(w, v) }
func (w wire) str(s string) wire   { return append(append(w, s...), 0) }
func (w wire) raw(s string) wire   { return append(w, s...) }
func (w wire) sized(s string) wire { return w.u32(uint32(len(s))).raw(s) }
func (w wire) tuple(cols ...tcol) wire {
	w = w.u16(uint16(len(cols)))
	for _, c := range cols {
		w = w.u8(c.Kind)
		if c.Kind == colText || c.Kind == colBinary {
			w = w.sized(c.Data)
		}
	}
	return w
}

// tcol is a tuple column as the tests see it.
type tcol struct {
	Kind byte
	Data string
}

func text(s string) tcol { return tcol{colText, s} }

var (
	null      = tcol{Kind: colNull}
	unchanged = tcol{Kind: colUnchanged}
)

// A commit time and its pgoutput form (microseconds since 2000-01-01).
// Decoded times are in the local zone, as pglogrepl's are.
var (
	commitTime   = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC).Local()
	commitTimeUS = commitTime.UnixMicro() - 946684800*1000000
)

func beginMsg(finalLSN uint64, us int64, xid uint32) []byte {
	return msgOf(msgBegin).u64(finalLSN).u64(uint64(us)).u32(xid)
}

func commitMsg(commitLSN, endLSN uint64, us int64) []byte {
	return msgOf(msgCommit).u8(0).u64(commitLSN).u64(endLSN).u64(uint64(us))
}

// relationMsg describes a table whose first column is its key, all text.
func relationMsg(id uint32, ns, name string, cols ...string) []byte {
	w := msgOf(msgRelation).u32(id).str(ns).str(name).u8('d').u16(uint16(len(cols)))
	for i, c := range cols {
		w = w.u8(b2u(i == 0)).str(c).u32(25).u32(0xffffffff)
	}
	return w
}

func insertMsg(rel uint32, cols ...tcol) []byte {
	return msgOf(msgInsert).u32(rel).u8(tupleNew).tuple(cols...)
}

func updateMsg(rel uint32, oldKind byte, old []tcol, cols ...tcol) []byte {
	w := msgOf(msgUpdate).u32(rel)
	if oldKind != 0 {
		w = w.u8(oldKind).tuple(old...)
	}
	return w.u8(tupleNew).tuple(cols...)
}

func deleteMsg(rel uint32, kind byte, cols ...tcol) []byte {
	return msgOf(msgDelete).u32(rel).u8(kind).tuple(cols...)
}

func truncateMsg(opts byte, ids ...uint32) []byte {
	w := msgOf(msgTruncate).u32(uint32(len(ids))).u8(opts)
	for _, id := range ids {
		w = w.u32(id)
	}
	return w
}

func logicalMsg(transactional bool, lsn uint64, prefix, content string) []byte {
	return msgOf(msgMessage).u8(b2u(transactional)).u64(lsn).str(prefix).sized(content)
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// decoded is a message in a form both decoders can be compared in.
type decoded struct {
	Type      byte
	LSN       uint64
	EndLSN    uint64
	Time      time.Time
	Xid       uint32
	Flags     byte // commit flags, replica identity, truncate options; 1 = transactional message
	RelID     uint32
	Namespace string
	Name      string
	Cols      []dcol
	OldKind   byte
	Old       []tcol
	New       []tcol
	RelIDs    []uint32
	Content   string
}

type dcol struct {
	Flags   byte
	Name    string
	TypeOID uint32
	Typmod  int32
}

// view reads a message of this package's decoder; empty lists are nil.
func view(m *message, data []byte) decoded {
	d := decoded{Type: m.typ, RelID: m.relID, Namespace: string(m.namespace), Name: string(m.name),
		OldKind: m.oldKind, Content: string(m.content)}
	tup := func(t *tuple) []tcol {
		var cols []tcol
		for _, c := range t.cols {
			cols = append(cols, tcol{c.kind, string(data[c.off : c.off+c.n])})
		}
		return cols
	}
	d.Old, d.New = tup(&m.oldTuple), tup(&m.newTuple)
	for _, c := range m.relCols {
		d.Cols = append(d.Cols, dcol{c.flags, string(c.name), c.typeOID, c.typmod})
	}
	if len(m.relIDs) > 0 {
		d.RelIDs = append([]uint32(nil), m.relIDs...)
	}
	switch m.typ {
	case msgBegin:
		d.LSN, d.Time, d.Xid = m.lsn, m.commitTime(), m.xid
	case msgCommit:
		d.Flags, d.LSN, d.EndLSN, d.Time = m.flags, m.lsn, m.endLSN, m.commitTime()
	case msgOrigin:
		d.LSN = m.lsn
	case msgMessage:
		d.Flags, d.LSN = b2u(m.flags == 1), m.lsn
	case msgRelation, msgTruncate:
		d.Flags = m.flags
	}
	return d
}

// viewPglogrepl reads a message of pglogrepl.Parse.
func viewPglogrepl(msg pglogrepl.Message) decoded {
	tup := func(t *pglogrepl.TupleData) []tcol {
		if t == nil {
			return nil
		}
		var cols []tcol
		for _, c := range t.Columns {
			cols = append(cols, tcol{c.DataType, string(c.Data)})
		}
		return cols
	}
	d := decoded{Type: byte(msg.Type())}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		d.LSN, d.Time, d.Xid = uint64(m.FinalLSN), m.CommitTime, m.Xid
	case *pglogrepl.CommitMessage:
		d.Flags, d.LSN, d.EndLSN, d.Time = m.Flags, uint64(m.CommitLSN), uint64(m.TransactionEndLSN), m.CommitTime
	case *pglogrepl.OriginMessage:
		d.LSN, d.Name = uint64(m.CommitLSN), m.Name
	case *pglogrepl.RelationMessage:
		d.RelID, d.Namespace, d.Name, d.Flags = m.RelationID, m.Namespace, m.RelationName, m.ReplicaIdentity
		for _, c := range m.Columns {
			d.Cols = append(d.Cols, dcol{c.Flags, c.Name, c.DataType, c.TypeModifier})
		}
	case *pglogrepl.TypeMessage:
		d.RelID, d.Namespace, d.Name = m.DataType, m.Namespace, m.Name
	case *pglogrepl.InsertMessage:
		d.RelID, d.New = m.RelationID, tup(m.Tuple)
	case *pglogrepl.UpdateMessage:
		d.RelID, d.OldKind, d.Old, d.New = m.RelationID, m.OldTupleType, tup(m.OldTuple), tup(m.NewTuple)
	case *pglogrepl.DeleteMessage:
		d.RelID, d.OldKind, d.Old = m.RelationID, m.OldTupleType, tup(m.OldTuple)
	case *pglogrepl.TruncateMessage:
		d.Flags = m.Option
		if len(m.RelationIDs) > 0 {
			d.RelIDs = m.RelationIDs
		}
	case *pglogrepl.LogicalDecodingMessage:
		d.Flags, d.LSN, d.Name, d.Content = b2u(m.Transactional), uint64(m.LSN), m.Prefix, string(m.Content)
	}
	return d
}

// decodeCases are well-formed messages of every type the decoder knows.
var decodeCases = []struct {
	name string
	data []byte
	want decoded
}{
	{"begin", beginMsg(0x16B3748, commitTimeUS, 777),
		decoded{Type: 'B', LSN: 0x16B3748, Time: commitTime, Xid: 777}},
	{"commit", commitMsg(0x16B3748, 0x16B3778, commitTimeUS),
		decoded{Type: 'C', LSN: 0x16B3748, EndLSN: 0x16B3778, Time: commitTime}},
	{"origin", msgOf(msgOrigin).u64(0x10).str("upstream"),
		decoded{Type: 'O', LSN: 0x10, Name: "upstream"}},
	{"relation", relationMsg(16384, "public", "webhook_outbox", "id", "event_type", "payload"),
		decoded{Type: 'R', RelID: 16384, Namespace: "public", Name: "webhook_outbox", Flags: 'd', Cols: []dcol{
			{1, "id", 25, -1}, {0, "event_type", 25, -1}, {0, "payload", 25, -1}}}},
	{"relation without columns", relationMsg(7, "s", "t"),
		decoded{Type: 'R', RelID: 7, Namespace: "s", Name: "t", Flags: 'd'}},
	{"type", msgOf(msgType).u32(16390).str("public").str("mood"),
		decoded{Type: 'Y', RelID: 16390, Namespace: "public", Name: "mood"}},
	{"insert", insertMsg(16384, text("42"), text("order.created"), text(`{"id": 42}`), null, text("")),
		decoded{Type: 'I', RelID: 16384, New: []tcol{text("42"), text("order.created"), text(`{"id": 42}`), null, text("")}}},
	{"insert binary", insertMsg(1, tcol{colBinary, "\x00\x00\x00\x2a"}),
		decoded{Type: 'I', RelID: 1, New: []tcol{{colBinary, "\x00\x00\x00\x2a"}}}},
	{"update", updateMsg(1, 0, nil, text("1"), unchanged, text("2")),
		decoded{Type: 'U', RelID: 1, New: []tcol{text("1"), unchanged, text("2")}}},
	{"update of key", updateMsg(1, tupleKey, []tcol{text("1"), null, null}, text("3"), unchanged, text("2")),
		decoded{Type: 'U', RelID: 1, OldKind: 'K', Old: []tcol{text("1"), null, null}, New: []tcol{text("3"), unchanged, text("2")}}},
	{"update with old row", updateMsg(1, tupleOld, []tcol{text("1"), text("a")}, text("1"), text("b")),
		decoded{Type: 'U', RelID: 1, OldKind: 'O', Old: []tcol{text("1"), text("a")}, New: []tcol{text("1"), text("b")}}},
	{"delete by key", deleteMsg(1, tupleKey, text("3"), null),
		decoded{Type: 'D', RelID: 1, OldKind: 'K', Old: []tcol{text("3"), null}}},
	{"delete of old row", deleteMsg(1, tupleOld, text("3"), text("x")),
		decoded{Type: 'D', RelID: 1, OldKind: 'O', Old: []tcol{text("3"), text("x")}}},
	{"truncate", truncateMsg(pglogrepl.TruncateOptionRestartIdentity, 16384, 16390),
		decoded{Type: 'T', Flags: 2, RelIDs: []uint32{16384, 16390}}},
	{"transactional message", logicalMsg(true, 0x16B3700, "walhook-heartbeat", ""),
		decoded{Type: 'M', Flags: 1, LSN: 0x16B3700, Name: "walhook-heartbeat"}},
	{"message", logicalMsg(false, 0x16B3700, "p", "hello\x00world"),
		decoded{Type: 'M', LSN: 0x16B3700, Name: "p", Content: "hello\x00world"}},
	{"trailing bytes are ignored", append(beginMsg(1, 2, 3), 0xff),
		decoded{Type: 'B', LSN: 1, Time: pgTime(2), Xid: 3}},
}

func TestDecode(t *testing.T) {
	var shared decoder // reused across cases, as the stream reuses it
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, d := range []*decoder{&shared, new(decoder)} {
				m, err := d.decode(tc.data)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if got := view(m, tc.data); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("decoded\n %+v\nwant\n %+v", got, tc.want)
				}
			}
			// pglogrepl agrees on every well-formed message.
			msg, err := pglogrepl.Parse(tc.data)
			if err != nil {
				t.Fatalf("pglogrepl: %v", err)
			}
			if got := viewPglogrepl(msg); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("pglogrepl decoded\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

// Every proper prefix of a well-formed message is an error, never a panic.
func TestDecodeTruncated(t *testing.T) {
	var d decoder
	for _, tc := range decodeCases {
		data := tc.data
		if tc.name == "trailing bytes are ignored" {
			data = data[:len(data)-1]
		}
		for i := range len(data) {
			if m, err := d.decode(data[:i]); err == nil {
				t.Errorf("%s cut to %d bytes: decoded %+v", tc.name, i, view(m, data[:i]))
			}
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		err  error
		off  int
	}{
		{"empty", nil, errEmpty, 0},
		{"unknown type", []byte("X"), errUnsupported, 0},
		{"stream start (protocol 2)", msgOf('S').u32(1).u8(1), errUnsupported, 0},
		{"begin short", beginMsg(1, 2, 3)[:20], errShort, 17},
		{"insert without N", msgOf(msgInsert).u32(1).u8(tupleKey).tuple(text("1")), errTupleMarker, 5},
		{"unknown column kind", insertMsg(1, text("1"), tcol{Kind: 'x'}), errColumnKind, 14},
		{"column longer than message", msgOf(msgInsert).u32(1).u8('N').u16(1).u8('t').u32(0xffffffff).raw("abc"), errShort, 13},
		{"more columns than sent", msgOf(msgInsert).u32(1).u8('N').u16(3).u8('n'), errShort, 9},
		{"update old tuple without N", msgOf(msgUpdate).u32(1).u8(tupleKey).tuple(text("1")).u8('X').tuple(text("2")), errTupleMarker, 14},
		{"update with unknown marker", msgOf(msgUpdate).u32(1).u8('X').tuple(text("2")), errTupleMarker, 5},
		{"delete without key", msgOf(msgDelete).u32(1).u8(tupleNew).tuple(text("1")), errTupleMarker, 5},
		{"truncate of 4 billion relations", msgOf(msgTruncate).u32(0xffffffff).u8(0).u32(1), errShort, 6},
		{"relation name unterminated", msgOf(msgRelation).u32(1).str("public").raw("outbox"), errUnterminated, 12},
		{"relation with missing columns", msgOf(msgRelation).u32(1).str("s").str("t").u8('d').u16(0xffff), errShort, 12},
		{"message prefix unterminated", msgOf(msgMessage).u8(1).u64(1).raw("prefix-and-more-than-14-bytes"), errUnterminated, 10},
		{"message content beyond end", msgOf(msgMessage).u8(1).u64(1).str("p").u32(100).raw("short"), errShort, 16},
		{"origin name unterminated", msgOf(msgOrigin).u64(1).raw("o"), errUnterminated, 9},
	}
	var d decoder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := d.decode(tc.data)
			if err == nil {
				t.Fatalf("decoded %+v", view(m, tc.data))
			}
			var de *decodeError
			if !errors.Is(err, tc.err) || !errors.As(err, &de) || de.off != tc.off {
				t.Fatalf("error %v; want %v at byte %d", err, tc.err, tc.off)
			}
		})
	}
}

func TestTupleValues(t *testing.T) {
	data := insertMsg(1, text("a"), null, text(""), unchanged, tcol{colBinary, "bin"}, text("z"))
	var d decoder
	m, err := d.decode(data)
	if err != nil {
		t.Fatal(err)
	}
	var slab [][]byte
	vals := m.newTuple.values(data, &slab)
	// The message buffer is reused by the next receive.
	for i := range data {
		data[i] = '#'
	}
	want := [][]byte{[]byte("a"), nil, {}, nil, []byte("bin"), []byte("z")}
	if !reflect.DeepEqual(vals, want) {
		t.Fatalf("values %q, want %q", vals, want)
	}
	if vals[2] == nil {
		t.Fatal("an empty text value became NULL")
	}
	_ = append(vals[0], 'X') // must not overwrite what follows
	if !bytes.Equal(vals[4], []byte("bin")) || !bytes.Equal(vals[5], []byte("z")) {
		t.Fatalf("appending to a value changed another: %q", vals)
	}

	// Rows of one transaction share slabs of values: a row's values stay
	// its own, and appending to them cannot reach the next row's, across
	// slabs of every size (3 columns leave a tail each time).
	data2 := insertMsg(1, text("b"), text("c"), text("d"))
	m2, err := d.decode(data2)
	if err != nil {
		t.Fatal(err)
	}
	want2 := [][]byte{[]byte("b"), []byte("c"), []byte("d")}
	var rows [][][]byte
	for range 1000 {
		rows = append(rows, m2.newTuple.values(data2, &slab))
	}
	_ = append(vals, []byte("appended"))
	for _, r := range rows {
		_ = append(r, []byte("appended"))
	}
	if !reflect.DeepEqual(vals, want) {
		t.Fatalf("first row %q after later rows, want %q", vals, want)
	}
	for i, r := range rows {
		if !reflect.DeepEqual(r, want2) {
			t.Fatalf("row %d %q, want %q", i, r, want2)
		}
	}

	// A tuple of NULLs copies nothing.
	data = insertMsg(1, null, unchanged)
	if m, err = d.decode(data); err != nil {
		t.Fatal(err)
	}
	if vals := m.newTuple.values(data, &slab); len(vals) != 2 || vals[0] != nil || vals[1] != nil {
		t.Fatalf("values %q", vals)
	}
}

// parsePglogrepl is pglogrepl.Parse with its panics turned into errors.
func parsePglogrepl(data []byte) (msg pglogrepl.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pglogrepl panicked: %v", r)
		}
	}()
	return pglogrepl.Parse(data)
}

// FuzzDecode checks that the decoder never panics and agrees with
// pglogrepl.Parse: what one accepts the other accepts with the same values,
// except where pglogrepl is known to be wrong:
//   - it rejects a zero-column Insert and a zero-relation Truncate by a
//     fixed minimum length, though they are well-formed;
//   - it accepts an unknown tuple column kind, an Update whose new tuple
//     lacks its 'N' marker, and a logical message whose prefix has no NUL
//     (reading on from one byte before it), all of which Postgres' own
//     reader rejects and this decoder does too;
//   - it slices a logical message's content by the buffer's capacity, so a
//     length past the message reads whatever follows it in the buffer (the
//     fuzz test hands it a clipped slice, so that panics instead).
//
// The corpus in testdata/fuzz/FuzzDecode holds messages captured from
// PostgreSQL 15 (text and binary mode).
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d decoder
		m, err := d.decode(data)
		var got decoded
		if err == nil {
			got = view(m, data)
			for _, tp := range []*tuple{&m.oldTuple, &m.newTuple} {
				for i, v := range tp.values(data, new([][]byte)) {
					if c := tp.cols[i]; v != nil && !bytes.Equal(v, data[c.off:c.off+c.n]) {
						t.Fatalf("value %d is %q, message has %q", i, v, data[c.off:c.off+c.n])
					}
				}
			}
			// The decoder reuses its buffers: decoding again changes nothing.
			if m, err := d.decode(data); err != nil || !reflect.DeepEqual(view(m, data), got) {
				t.Fatalf("second decode differs: %v", err)
			}
		}
		// pglogrepl allocates what a length field says (up to 16 GB)
		// before it finds the message too short: keep it from lengths
		// that would stall or kill the fuzzer. Up to where this decoder
		// failed both read the same fields; past it, where pglogrepl is
		// lax, any four bytes may be read as a length.
		var de *decodeError
		if errors.As(err, &de) {
			if de.err == errShort && de.need > 1<<20 || lax(data, err) && hugeLength(data[de.off:]) {
				return
			}
		}
		// Clipped: pglogrepl slices a logical message's content by the
		// buffer's capacity, not its length, reading past the message.
		msg, perr := parsePglogrepl(slices.Clip(data))
		switch {
		case err == nil && perr == nil:
			if want := viewPglogrepl(msg); !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded\n %+v\npglogrepl\n %+v", got, want)
			}
		case err == nil:
			zeroColumnInsert := m.typ == msgInsert && len(m.newTuple.cols) == 0 && len(data) < 9
			zeroTruncate := m.typ == msgTruncate && len(m.relIDs) == 0 && len(data) < 10
			if !zeroColumnInsert && !zeroTruncate {
				t.Fatalf("decoded %+v; pglogrepl: %v", got, perr)
			}
		case perr == nil:
			if !lax(data, err) {
				t.Fatalf("error %v; pglogrepl decoded %+v", err, viewPglogrepl(msg))
			}
		}
	})
}

// lax says whether err is one pglogrepl does not detect, reading on.
func lax(data []byte, err error) bool {
	return len(data) > 0 && (errors.Is(err, errColumnKind) ||
		data[0] == msgUpdate && errors.Is(err, errTupleMarker) ||
		data[0] == msgMessage && errors.Is(err, errUnterminated))
}

// hugeLength says whether any four bytes of b, read as a length, exceed 1 MB.
func hugeLength(b []byte) bool {
	for i := 0; i+4 <= len(b); i++ {
		if binary.BigEndian.Uint32(b[i:]) > 1<<20 {
			return true
		}
	}
	return false
}

// benchTxn is a transaction of one outbox insert: 5 columns, 1 KB payload.
func benchTxn() [][]byte {
	payload := `{"order": {"id": 42, "note": "` + strings.Repeat("x", 1000) + `"}}`
	return [][]byte{
		beginMsg(0x16B3748, commitTimeUS, 777),
		insertMsg(16384, text("12345"), text("order.created"), text(payload), text("acme"), text("2026-03-04 05:06:07.123456+00")),
		commitMsg(0x16B3748, 0x16B3778, commitTimeUS),
	}
}

func BenchmarkDecode(b *testing.B) {
	msgs := benchTxn()
	var size int64
	for _, m := range msgs {
		size += int64(len(m))
	}
	b.Run("pglogrepl.Parse", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			for _, m := range msgs {
				if _, err := pglogrepl.Parse(m); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("decoder", func(b *testing.B) {
		var d decoder
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			for _, m := range msgs {
				if _, err := d.decode(m); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	// Values copied out of the buffer, as pglogrepl.Parse copies them.
	b.Run("decoder+values", func(b *testing.B) {
		var d decoder
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			var slab [][]byte // one per transaction, as the stream has
			for _, data := range msgs {
				m, err := d.decode(data)
				if err != nil {
					b.Fatal(err)
				}
				if m.typ == msgInsert {
					m.newTuple.values(data, &slab)
				}
			}
		}
	})
}

// BenchmarkStreamDecode is the stream's whole decoding path: messages to a
// Txn whose values outlive the message buffer.
func BenchmarkStreamDecode(b *testing.B) {
	s := New(Options{}, nil)
	var d decoder
	rels := map[uint32]*Relation{}
	var txn *Txn
	rel := relationMsg(16384, "public", "webhook_outbox", "id", "event_type", "payload", "tenant_id", "created_at")
	if _, err := s.decode(&d, rel, rels, &txn); err != nil {
		b.Fatal(err)
	}
	msgs := benchTxn()
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range msgs {
			if _, err := s.decode(&d, m, rels, &txn); err != nil {
				b.Fatal(err)
			}
		}
	}
}
