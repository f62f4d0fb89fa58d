//go:build race

package signature

// raceEnabled lets allocation tests step aside: under the race detector
// sync.Pool deliberately drops items, so allocation counts mean nothing.
const raceEnabled = true
