package main

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// allowedCPUs returns the CPUs this process may run on, ascending.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

func cpuSet(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// pinSelf moves every thread of this process onto cpus and sizes
// GOMAXPROCS to them. Affinity is per thread, and a new thread inherits its
// creator's, so once every existing thread is moved the ones the runtime
// starts later follow. The list is read twice, for threads started while
// the first pass ran.
func pinSelf(cpus []int) error {
	set := cpuSet(cpus)
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return err
			}
		}
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// startOn starts cmd with its affinity set to cpus from the first
// instruction, so that the server's runtime sizes itself to them: the child
// inherits the affinity of the thread that forks it. That thread is a
// locked one of its own, moved to cpus for the fork and back to home
// after; should moving it back fail, it ends with its goroutine rather
// than run generator work on the server's CPUs.
func startOn(cmd *exec.Cmd, cpus, home []int) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
			done <- err
			return
		}
		err := cmd.Start()
		if rerr := unix.SchedSetaffinity(0, cpuSet(home)); rerr != nil {
			done <- err
			return // still locked: the runtime ends the thread
		}
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}
