package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"time"
)

// Ids of events and deliveries are derived from where a change sits in the
// WAL, not drawn at random, so a transaction streamed again after a crash
// produces the same ids.

// EventID is the id of the index-th change of the transaction committed at
// commitLSN: "evt_", the LSN in 16 hex digits, the index in at least 6 (more
// only in a transaction of over 16.7 million changes).
func EventID(commitLSN uint64, index int) string {
	b := make([]byte, 0, 4+16+6)
	b = append(b, "evt_"...)
	b = appendHex(b, commitLSN, 16)
	b = appendHex(b, uint64(index), 6)
	return string(b)
}

// appendHex appends v in lower-case hex, zero-padded to at least digits.
func appendHex(b []byte, v uint64, digits int) []byte {
	const hex = "0123456789abcdef"
	for v>>(4*uint(digits)) != 0 && digits < 16 {
		digits++
	}
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hex[(v>>(4*uint(i)))&0xf])
	}
	return b
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// DeliveryID derives the delivery (and webhook-id) of an event for an
// endpoint: "msg_", the event's commit time in microseconds as 13 hex
// digits, then 13 characters of a hash of event id and endpoint id. The
// same event and endpoint always give the same id, so a transaction
// streamed again is recognised by its receivers.
//
// Time first, because ids sorting in commit order put a new delivery at
// the right edge of the primary key, the page Postgres has at hand, not on
// a random page of an index that outgrows memory. Not the commit LSN,
// although it sorts the same: receivers see webhook-id, and LSNs would
// show them how much the database writes. 30 characters fit Go's 32-byte
// allocations, which matters for a million ids waiting in the wheel. Two
// deliveries collide only in the same microsecond and with the same 64-bit
// hash.
func DeliveryID(committed time.Time, eventID, endpointID string) string {
	h := sha256.New()
	h.Write([]byte(eventID))
	h.Write([]byte{'/'})
	h.Write([]byte(endpointID))
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	b := appendDeliveryTime(make([]byte, 0, 4+13+13), committed)
	b = idEncoding.AppendEncode(b, sum[:8])
	return string(b)
}

// DeliveryIDFloor is the least id a delivery created at t or later can
// have: deliveries in a time range are a range of ids.
func DeliveryIDFloor(t time.Time) string {
	return string(appendDeliveryTime(make([]byte, 0, 4+13), t))
}

func appendDeliveryTime(b []byte, t time.Time) []byte {
	us := min(max(t.UnixMicro(), 0), 1<<52-1) // 13 hex digits last until 2112
	b = append(b, "msg_"...)
	return appendHex(b, uint64(us), 13)
}

// NewID returns prefix + 26 random base32 characters (128 bits).
func NewID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + idEncoding.EncodeToString(b[:])
}
