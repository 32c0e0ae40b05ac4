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

// machineIdle returns the idle and iowait time of all CPUs since boot and
// how many CPUs there are, from /proc/stat. Busy time over a window is the
// rest of the window's wall time, steal included: with the tick stopped on
// idle CPUs (NO_HZ, the kernels' default) the kernel measures idle time as
// the time spent asleep, while its user, system and softirq counters are
// sampled at the tick, and a CPU woken for a few hundred microseconds at a
// time, as one running only a server is, gets whole ticks of those charged
// to the idle task.
func machineIdle() (idle time.Duration, cpus int, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		if f[0] != "cpu" {
			cpus++
			continue
		}
		i, err1 := strconv.ParseUint(f[4], 10, 64)
		w, err2 := strconv.ParseUint(f[5], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, errors.New("malformed /proc/stat")
		}
		idle = time.Duration(i+w) * clockTick
	}
	if cpus == 0 {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	return idle, cpus, nil
}

// cpuSample is a reading of every CPU counter a run reports.
type cpuSample struct {
	at        time.Time
	server    time.Duration // 0 without a server pid
	generator time.Duration
	idle      time.Duration // all CPUs
	cpus      int
}

// busySince returns the CPU time all CPUs were busy between a and s.
func (s cpuSample) busySince(a cpuSample) time.Duration {
	if s.cpus == 0 || s.cpus != a.cpus {
		return 0
	}
	return max(0, s.at.Sub(a.at)*time.Duration(s.cpus)-(s.idle-a.idle))
}

func sampleCPU(serverPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	if serverPID > 0 {
		s.server, _ = procCPU(serverPID)
	}
	s.generator, _ = procCPU(0)
	s.idle, s.cpus, _ = machineIdle()
	return s
}
