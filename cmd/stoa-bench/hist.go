package main

import (
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// Delay histogram: microseconds in log-linear buckets, exact below 64 µs
// and within 1/32 (3%) above, up to about 18 minutes.
const (
	histLinear  = 64
	histSub     = 32
	histBuckets = histLinear + 25*histSub
)

func bucketOf(us uint64) int {
	if us < histLinear {
		return int(us)
	}
	e := bits.Len64(us) - 6 // us>>e is in [32, 64)
	i := histLinear + (e-1)*histSub + int(us>>e) - histSub
	return min(i, histBuckets-1)
}

// bucketMid is the middle of bucket i, in microseconds.
func bucketMid(i int) float64 {
	if i < histLinear {
		return float64(i)
	}
	e := (i-histLinear)/histSub + 1
	m := (i-histLinear)%histSub + histSub
	lo := uint64(m) << e
	return float64(lo) + float64(uint64(1)<<e)/2
}

// histogram counts delays. record is called by one goroutine; snapshot may
// run concurrently from another.
type histogram struct {
	b [histBuckets]atomic.Uint32
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.b[bucketOf(uint64(us))].Add(1)
}

// counts is a plain histogram, for merging and percentiles.
type counts [histBuckets]uint64

func (c *counts) add(h *histogram) {
	for i := range h.b {
		c[i] += uint64(h.b[i].Load())
	}
}

// sub returns c - base.
func (c *counts) sub(base *counts) *counts {
	out := new(counts)
	for i := range c {
		if c[i] > base[i] {
			out[i] = c[i] - base[i]
		}
	}
	return out
}

func (c *counts) total() uint64 {
	var n uint64
	for _, v := range c {
		n += v
	}
	return n
}

// quantile returns the q-quantile in milliseconds, or 0 when empty.
func (c *counts) quantile(q float64) float64 {
	n := c.total()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n-1)) + 1
	var seen uint64
	for i, v := range c {
		seen += v
		if seen >= rank {
			return bucketMid(i) / 1000
		}
	}
	return bucketMid(histBuckets-1) / 1000
}

// quantiles of plain durations (join times), in milliseconds.
func durationQuantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	i := int(q * float64(len(sorted)-1))
	return float64(sorted[i].Microseconds()) / 1000
}
