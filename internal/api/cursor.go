package api

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/walhook/walhook/internal/store"
)

// Cursors are opaque to clients: base64url of "<created_at in unix
// microseconds>.<id>" of the last row of the page, which is exact
// (Postgres keeps microseconds) and keyed like the lists' order: (created_at,
// id), or the id alone for deliveries, whose ids begin with their creation
// time.

func encodeCursor(k store.PageKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.CreatedAt.UnixMicro(), 10) + "." + k.ID))
}

var errCursor = errors.New("malformed cursor")

func decodeCursor(c string) (store.PageKey, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return store.PageKey{}, errCursor
	}
	us, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || id == "" || len(id) > 100 {
		return store.PageKey{}, errCursor
	}
	return store.PageKey{CreatedAt: time.UnixMicro(n).UTC(), ID: id}, nil
}
