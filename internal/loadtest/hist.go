package loadtest

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in microseconds: 16 linear buckets
// per power of two (about 6 % resolution), mergeable and cheap to update.
type hist struct {
	counts [16 + 64*16]uint64
	n      uint64
	max    time.Duration
}

func bucketOf(us uint64) int {
	if us < 16 {
		return int(us)
	}
	e := bits.Len64(us) - 5 // us>>e is in [16, 32)
	return 16 + e*16 + int(us>>e) - 16
}

// lowerOf is the smallest value of bucket i, in microseconds.
func lowerOf(i int) uint64 {
	if i < 16 {
		return uint64(i)
	}
	e := (i - 16) / 16
	m := uint64((i-16)%16 + 16)
	return m << e
}

func (h *hist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d/time.Microsecond))]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the q-quantile (0 < q ≤ 1), at the middle of its bucket
// and never above the maximum seen; 0 when empty.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowerOf(i), lowerOf(i+1)
			d := time.Duration((lo+hi)/2) * time.Microsecond
			if i < 16 {
				d = time.Duration(lo) * time.Microsecond
			}
			return min(d, h.max)
		}
	}
	return h.max
}

// Latency summarizes request latencies.
type Latency struct {
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

func (h *hist) summary() Latency {
	return Latency{P50: h.quantile(0.50), P99: h.quantile(0.99), Max: h.max}
}
