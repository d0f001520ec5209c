package bench

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// target is one HTTP endpoint under load, with its own connection pool.
type target struct {
	name   string
	url    string
	client *http.Client
	p      payloads
	secret string
}

func newTarget(name, url string, p payloads, secret string, conns int) *target {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &target{name: name, url: url, p: p, secret: secret, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// post sends body i and returns the status code (0 on a transport error).
// Both the receiver and the baseline get the same request: the receiver
// checks X-Hookline-Secret, the baseline keys its record by X-Bench-Key.
func (t *target) post(i int) int {
	k := i % len(t.p.bodies)
	req, err := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(t.p.bodies[k]))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hookline-Secret", t.secret)
	req.Header.Set("X-Bench-Key", t.p.convs[k])
	resp, err := t.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// loadResult accumulates what a load run saw.
type loadResult struct {
	ok, failed int
	elapsed    time.Duration
	lat        []time.Duration // of every answered request
	codes      map[int]int     // non-200 answers
}

func (r *loadResult) merge(o loadResult) {
	r.ok += o.ok
	r.failed += o.failed
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	for c, n := range o.codes {
		if r.codes == nil {
			r.codes = map[int]int{}
		}
		r.codes[c] += n
	}
}

func (r loadResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// pct returns the p-th percentile (0 < p ≤ 100) of the latencies.
func (r loadResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// closedLoop runs conns workers, each sending one request after the other,
// until dur passed or limit requests were started. Request numbers start at
// from so successive runs use fresh bodies.
func closedLoop(t *target, conns int, dur time.Duration, limit, from int) loadResult {
	var next atomic.Int64
	var mu sync.Mutex
	res := loadResult{codes: map[int]int{}}
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			ok, failed := 0, 0
			codes := map[int]int{}
			for {
				i := int(next.Add(1) - 1)
				if i >= limit || time.Now().After(deadline) {
					break
				}
				t0 := time.Now()
				code := t.post(from + i)
				lat = append(lat, time.Since(t0))
				if code == http.StatusOK {
					ok++
				} else {
					failed++
					codes[code]++
				}
			}
			mu.Lock()
			res.ok += ok
			res.failed += failed
			res.lat = append(res.lat, lat...)
			for c, n := range codes {
				res.codes[c] += n
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// openLoop sends rate requests per second for dur, each at its scheduled
// time whatever the answers before it (open loop), and measures latency from
// the scheduled time, so a stall counts against every request it delayed.
func openLoop(t *target, rate int, dur time.Duration, from int) loadResult {
	interval := time.Second / time.Duration(rate)
	n := int(dur / interval)
	lat := make([]time.Duration, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			codes[i] = t.post(from + i)
			lat[i] = time.Since(at)
		})
	}
	wg.Wait()
	res := loadResult{elapsed: time.Since(start), lat: lat, codes: map[int]int{}}
	for _, c := range codes {
		if c == http.StatusOK {
			res.ok++
		} else {
			res.failed++
			res.codes[c]++
		}
	}
	return res
}
