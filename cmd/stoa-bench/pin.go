package main

import (
	"fmt"
	"strconv"
	"strings"
)

// CPU split. On one machine the generator competes with the server under
// test for the cores: its hundred subscribers all wake at once when the
// server fans a packet out to them, and the server's next packet then waits
// for a core. What that measures is the generator, not the server, and it
// is not how a media node runs: its clients are elsewhere. compare
// therefore gives the generator its own cores and each server the others
// (--pin, the default where there are at least two), as one would put the
// clients on another machine. Both servers get the same cores; the Go
// runtime of each sizes GOMAXPROCS to them.

// cpuSplit is which CPUs the server and the generator run on.
type cpuSplit struct {
	server, generator []int
}

// splitCPUs divides the CPUs the generator may use: the first half (at
// least one) to the generator, the rest to the server. ok is false with
// fewer than two.
func splitCPUs(allowed []int) (cpuSplit, bool) {
	if len(allowed) < 2 {
		return cpuSplit{}, false
	}
	n := len(allowed) / 2
	return cpuSplit{generator: allowed[:n:n], server: allowed[n:]}, true
}

// cpuList formats CPUs as the kernel's lists do: "0", "1-3", "0,2".
func cpuList(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		} else {
			parts = append(parts, strconv.Itoa(cpus[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// describe says where the processes ran, for the report.
func (s cpuSplit) describe() string {
	return fmt.Sprintf("server on CPU %s, generator on CPU %s", cpuList(s.server), cpuList(s.generator))
}
