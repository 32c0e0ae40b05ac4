package main

import (
	"reflect"
	"testing"
	"time"
)

func TestSplitCPUs(t *testing.T) {
	for _, tc := range []struct {
		allowed       []int
		server, gen   []int
		ok            bool
		serverL, genL string
	}{
		{allowed: []int{0}, ok: false},
		{allowed: []int{0, 1}, server: []int{1}, gen: []int{0}, ok: true, serverL: "1", genL: "0"},
		{allowed: []int{0, 1, 2}, server: []int{1, 2}, gen: []int{0}, ok: true, serverL: "1-2", genL: "0"},
		{allowed: []int{0, 1, 2, 3}, server: []int{2, 3}, gen: []int{0, 1}, ok: true, serverL: "2-3", genL: "0-1"},
		{allowed: []int{2, 5, 6, 9}, server: []int{6, 9}, gen: []int{2, 5}, ok: true, serverL: "6,9", genL: "2,5"},
	} {
		s, ok := splitCPUs(tc.allowed)
		if ok != tc.ok {
			t.Fatalf("splitCPUs(%v) ok = %v", tc.allowed, ok)
		}
		if !ok {
			continue
		}
		if !reflect.DeepEqual(s.server, tc.server) || !reflect.DeepEqual(s.generator, tc.gen) {
			t.Errorf("splitCPUs(%v) = server %v generator %v, want %v %v", tc.allowed, s.server, s.generator, tc.server, tc.gen)
		}
		if got := cpuList(s.server); got != tc.serverL {
			t.Errorf("cpuList(%v) = %q, want %q", s.server, got, tc.serverL)
		}
		if got := cpuList(s.generator); got != tc.genL {
			t.Errorf("cpuList(%v) = %q, want %q", s.generator, got, tc.genL)
		}
	}
	// Appending to the generator's CPUs must not overwrite the server's.
	s, _ := splitCPUs([]int{0, 1, 2, 3})
	_ = append(s.generator, 99)
	if s.server[0] != 2 {
		t.Errorf("the generator's slice shares the server's: %v", s.server)
	}
}

func TestBusySince(t *testing.T) {
	t0 := time.Now()
	a := cpuSample{at: t0, idle: 10 * time.Second, cpus: 2}
	b := cpuSample{at: t0.Add(time.Second), idle: 11500 * time.Millisecond, cpus: 2}
	if got := b.busySince(a); got != 500*time.Millisecond {
		t.Errorf("busy = %v, want 500ms (2 CPUs for 1 s, 1.5 s idle)", got)
	}
	b.cpus = 3 // a CPU came online: no figure rather than a wrong one
	if got := b.busySince(a); got != 0 {
		t.Errorf("busy across a CPU change = %v", got)
	}
	idle, cpus, err := machineIdle()
	if err != nil || cpus < 1 || idle <= 0 {
		t.Fatalf("machineIdle() = %v, %d, %v", idle, cpus, err)
	}
}
