package stream

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// spilledTxn is a transaction with what a spill must keep: NULL and empty
// values, a logical message, two relations, one of them in two versions.
func spilledTxn(xid uint32, rels ...*Relation) *Txn {
	t := &Txn{Xid: xid, CommitLSN: uint64(xid) * 100, EndLSN: uint64(xid)*100 + 8,
		CommitTime: time.Unix(0, 1_732_000_000_123_456_000+int64(xid)), BeginAt: time.Unix(0, 1_732_000_000_000_000_000), size: 777}
	for i, rel := range rels {
		t.Changes = append(t.Changes, Change{Op: Insert, Rel: rel, Values: [][]byte{[]byte("order.created"), nil, {}, []byte(`{"n": ` + string(rune('0'+i)) + `}`)}})
	}
	t.Changes = append(t.Changes, Change{Op: Message, Prefix: "walhook", Content: []byte("beat")}, Change{Op: Message, Prefix: "", Content: nil})
	return t
}

func TestSpillGivesBackWhatItTookInOrder(t *testing.T) {
	outbox := &Relation{ID: 1, Namespace: "public", Name: "webhook_outbox"}
	outboxAltered := &Relation{ID: 1, Namespace: "public", Name: "webhook_outbox", Columns: []string{"id"}}
	endpoints := &Relation{ID: 2, Namespace: "walhook", Name: "endpoints"}
	sp := newSpill(1<<20, t.TempDir())
	defer sp.close()
	want := []*Txn{spilledTxn(1, outbox, endpoints), spilledTxn(2, outboxAltered), spilledTxn(3, endpoints, outbox)}
	for _, txn := range want {
		if ok, err := sp.put(txn); !ok || err != nil {
			t.Fatalf("put %d: %v, %v", txn.Xid, ok, err)
		}
	}
	if !sp.active() {
		t.Fatal("a spill holding transactions says it is not active")
	}
	for _, w := range want {
		got, err := sp.take()
		if err != nil || got == nil {
			t.Fatalf("take %d: %v, %v", w.Xid, got, err)
		}
		if !got.CommitTime.Equal(w.CommitTime) || !got.BeginAt.Equal(w.BeginAt) {
			t.Errorf("transaction %d: times %v, %v; want %v, %v", w.Xid, got.CommitTime, got.BeginAt, w.CommitTime, w.BeginAt)
		}
		got.CommitTime, got.BeginAt = w.CommitTime, w.BeginAt
		if !reflect.DeepEqual(got, w) {
			t.Errorf("transaction %d came back as %+v, want %+v", w.Xid, got, w)
		}
		for i := range w.Changes {
			if got.Changes[i].Rel != w.Changes[i].Rel {
				t.Errorf("transaction %d, change %d: relation %p, want the same %p", w.Xid, i, got.Changes[i].Rel, w.Changes[i].Rel)
			}
		}
	}
	if txn, err := sp.take(); txn != nil || err != nil || sp.active() {
		t.Fatalf("an empty spill gave %v, %v (active %v)", txn, err, sp.active())
	}
	if sp.wOff != 0 || len(sp.rels) != 0 {
		t.Errorf("a drained spill keeps %d bytes and %d relations", sp.wOff, len(sp.rels))
	}
}

func TestSpillBound(t *testing.T) {
	rel := &Relation{ID: 1, Name: "t"}
	sp := newSpill(1, t.TempDir()) // smaller than any transaction
	defer sp.close()
	if ok, err := sp.put(spilledTxn(1, rel)); !ok || err != nil {
		t.Fatalf("the first transaction is refused (%v, %v); it must always fit", ok, err)
	}
	if ok, err := sp.put(spilledTxn(2, rel)); ok || err != nil {
		t.Fatalf("a second transaction past the bound: %v, %v; want refused", ok, err)
	}
	if txn, err := sp.take(); err != nil || txn == nil || txn.Xid != 1 {
		t.Fatalf("take: %v, %v", txn, err)
	}
	if ok, err := sp.put(spilledTxn(2, rel)); !ok || err != nil {
		t.Fatalf("once drained, the spill refuses (%v, %v)", ok, err)
	}
}

// TestReadAheadKeepsCommitOrderAcrossItsSpill checks that a transaction
// goes to memory only while nothing waits in the spill.
func TestReadAheadKeepsCommitOrderAcrossItsSpill(t *testing.T) {
	rel := &Relation{ID: 1, Name: "t"}
	ra := newReadAhead(minTxnBytes) // room for one transaction in memory
	ra.spill = newSpill(1<<20, t.TempDir())
	defer ra.spill.close()
	place := func(xid uint32) {
		t.Helper()
		if ok, err := ra.place(spilledTxn(xid, rel)); !ok || err != nil {
			t.Fatalf("place %d: %v, %v", xid, ok, err)
		}
	}
	next := func(want uint32, wantSpilled bool) {
		t.Helper()
		txn, fromSpill, err := ra.next(context.Background(), nil)
		if err != nil || txn == nil || txn.Xid != want || fromSpill != wantSpilled {
			t.Fatalf("next: %v (from the spill %v), %v; want %d (from the spill %v)", txn, fromSpill, err, want, wantSpilled)
		}
		ra.pop(txn, fromSpill)
	}
	place(1) // memory
	place(2) // memory is full: the spill
	next(1, false)
	place(3) // memory has room, but 2 waits in the spill: after it
	next(2, true)
	next(3, true)
	place(4) // the spill is drained: memory again
	next(4, false)
	if ra.bytes.Load() != 0 {
		t.Errorf("%d bytes still counted in memory", ra.bytes.Load())
	}
}

// TestReadAheadKeepsCommitOrderUnderConcurrency places transactions from
// one goroutine while another takes them, with room for one in memory, so
// that they keep moving between memory and the spill: every one must come
// out once and in order.
func TestReadAheadKeepsCommitOrderUnderConcurrency(t *testing.T) {
	rel := &Relation{ID: 1, Name: "t"}
	ra := newReadAhead(minTxnBytes)
	ra.spill = newSpill(64<<10, t.TempDir()) // small: it also fills up and drains
	defer ra.spill.close()
	const n = 3000
	placed := make(chan error, 1)
	go func() {
		for xid := uint32(1); xid <= n; xid++ {
			for {
				ok, err := ra.place(spilledTxn(xid, rel))
				if err != nil {
					placed <- err
					return
				}
				if ok {
					break
				}
				<-ra.room
			}
		}
		placed <- nil
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	spilled := 0
	for want := uint32(1); want <= n; want++ {
		txn, fromSpill, err := ra.next(ctx, nil)
		if err != nil || txn == nil {
			t.Fatalf("next after %d: %v, %v", want-1, txn, err)
		}
		if txn.Xid != want {
			t.Fatalf("transaction %d came out where %d was due", txn.Xid, want)
		}
		if fromSpill {
			spilled++
		}
		ra.pop(txn, fromSpill)
	}
	if err := <-placed; err != nil {
		t.Fatal(err)
	}
	if spilled == 0 || spilled == n {
		t.Errorf("%d of %d came from the spill; the test wants both ways used", spilled, n)
	}
}

// TestSpillThatCannotWriteTurnsOff checks that a spill whose file cannot be
// made refuses once with errSpillOff, then quietly: the read-ahead goes on
// in memory and the session does not end over it.
func TestSpillThatCannotWriteTurnsOff(t *testing.T) {
	rel := &Relation{ID: 1, Name: "t"}
	sp := newSpill(1<<20, filepath.Join(t.TempDir(), "missing"))
	defer sp.close()
	if ok, err := sp.put(spilledTxn(1, rel)); ok || !errors.Is(err, errSpillOff) {
		t.Fatalf("put into a missing directory: %v, %v; want errSpillOff", ok, err)
	}
	if ok, err := sp.put(spilledTxn(2, rel)); ok || err != nil {
		t.Fatalf("put after giving up: %v, %v; want a quiet refusal", ok, err)
	}
}
