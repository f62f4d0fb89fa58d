package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// rawResult is the machine's HTTP ceiling: what a plain Go keep-alive client
// achieves against the same receivers, without walhook.
type rawResult struct {
	Concurrency int     `json:"concurrency"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Seconds     float64 `json:"seconds"`
	PerSec      float64 `json:"per_sec"`
	// BeforePerSec and AfterPerSec are the rates of the measurement before
	// the window and of the one after it, when PerSec combines both.
	BeforePerSec float64 `json:"before_per_sec,omitempty"`
	AfterPerSec  float64 `json:"after_per_sec,omitempty"`
}

// with combines a measurement taken before the window (r) with one taken
// after it: requests and seconds add up.
func (r rawResult) with(after rawResult) rawResult {
	c := rawResult{
		Concurrency: r.Concurrency, Requests: r.Requests + after.Requests, Errors: r.Errors + after.Errors,
		Seconds: r.Seconds + after.Seconds, BeforePerSec: r.PerSec, AfterPerSec: after.PerSec,
	}
	if c.Seconds > 0 {
		c.PerSec = float64(c.Requests) / c.Seconds
	}
	return c
}

// rawHTTPCeiling POSTs body to the urls from concurrency goroutines (spread
// round-robin, perHost connections per receiver like walhook's lanes) for d.
// The first tenth of d is not counted: it opens the connections.
func rawHTTPCeiling(ctx context.Context, urls []string, concurrency int, body []byte, d time.Duration) (rawResult, error) {
	if len(urls) == 0 || concurrency < 1 {
		return rawResult{}, nil
	}
	perHost := (concurrency + len(urls) - 1) / len(urls)
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: perHost,
		MaxConnsPerHost:     perHost,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	from := time.Now().Add(d / 10)
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range concurrency {
		url := urls[i%len(urls)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				good := post(runCtx, client, url, body)
				if runCtx.Err() != nil || time.Now().Before(from) {
					continue // cancelled mid-request, or still opening connections
				}
				if good {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return rawResult{}, err
	}
	secs := (d - d/10).Seconds()
	res := rawResult{Concurrency: concurrency, Requests: ok.Load(), Errors: failed.Load(), Seconds: secs, PerSec: float64(ok.Load()) / secs}
	if res.Requests == 0 {
		return res, fmt.Errorf("raw HTTP ceiling: no request succeeded (%d errors)", res.Errors)
	}
	return res, nil
}

func post(ctx context.Context, c *http.Client, url string, body []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(rawHeader, "1")
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}
