package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of CPU times in /proc: 100 on
// every architecture Go supports (the kernel's ABI fixes it for userspace).
const clockTick = 10 * time.Millisecond

// procCPU returns the user plus system CPU time process pid has used, from
// /proc/PID/stat fields 14 and 15 (proc(5)). pid 0 means this process.
func procCPU(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed " + path)
	}
	f := strings.Fields(string(b[i+1:]))
	const utime, stime = 14 - 3, 15 - 3 // field numbers minus pid, comm, and one-based counting
	if len(f) <= stime {
		return 0, errors.New("short " + path)
	}
	u, err1 := strconv.ParseUint(f[utime], 10, 64)
	s, err2 := strconv.ParseUint(f[stime], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed " + path)
	}
	return time.Duration(u+s) * clockTick, nil
}

// procRSS returns the resident set size of process pid (VmRSS), in bytes.
func procRSS(pid int) (uint64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) < 1 {
			break
		}
		kb, err := strconv.ParseUint(fs[0], 10, 64)
		if err != nil {
			break
		}
		return kb << 10, nil
	}
	return 0, errors.New("no VmRSS in " + path)
}

// machineCPU returns the busy and total CPU time of all cores since boot,
// from the first line of /proc/stat. Idle and iowait count as not busy.
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	var sum, idle uint64
	for i, s := range f[1:] {
		if i >= 8 { // guest times are already in user and nice
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, errors.New("malformed /proc/stat")
		}
		sum += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return time.Duration(sum-idle) * clockTick, time.Duration(sum) * clockTick, nil
}

// cpuSample is a reading of every CPU counter a run reports.
type cpuSample struct {
	at        time.Time
	server    time.Duration // 0 without a server pid
	generator time.Duration
	busy      time.Duration
	total     time.Duration
}

func sampleCPU(serverPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	if serverPID > 0 {
		s.server, _ = procCPU(serverPID)
	}
	s.generator, _ = procCPU(0)
	s.busy, s.total, _ = machineCPU()
	return s
}
