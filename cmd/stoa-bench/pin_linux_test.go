package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cpusAllowed reads a task's Cpus_allowed_list from its status file.
func cpusAllowed(t *testing.T, status string) string {
	t.Helper()
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s has no Cpus_allowed_list", status)
	return ""
}

// TestStartOn starts a child on one CPU and checks that it runs there and
// that the generator's threads keep theirs.
func TestStartOn(t *testing.T) {
	cpus, err := allowedCPUs()
	if err != nil || len(cpus) == 0 {
		t.Fatalf("allowedCPUs: %v %v", cpus, err)
	}
	home := cpuList(cpus)
	last := cpus[len(cpus)-1:]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sleep", "10")
	if err := startOn(cmd, last, cpus); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if got, want := cpusAllowed(t, fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)), cpuList(last); got != want {
		t.Errorf("child runs on CPUs %s, want %s", got, want)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if got := cpusAllowed(t, "/proc/self/task/"+task.Name()+"/status"); got != home {
			t.Errorf("thread %s runs on CPUs %s after startOn, want %s", task.Name(), got, home)
		}
	}
}

// TestPinSelf pins a child copy of the test binary to one CPU and checks
// every one of its threads, including those it starts afterwards.
func TestPinSelf(t *testing.T) {
	if os.Getenv("STOA_BENCH_PIN_CHILD") != "" {
		pinChild()
		return
	}
	cpus, err := allowedCPUs()
	if err != nil || len(cpus) == 0 {
		t.Fatalf("allowedCPUs: %v %v", cpus, err)
	}
	want := strconv.Itoa(cpus[len(cpus)-1])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPinSelf$")
	cmd.Env = append(os.Environ(), "STOA_BENCH_PIN_CHILD="+want)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var threads int
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "thread" {
			continue
		}
		threads++
		if f[2] != want {
			t.Errorf("child thread %s runs on CPUs %s, want %s", f[1], f[2], want)
		}
	}
	if !strings.Contains(string(out), "gomaxprocs 1\n") {
		t.Errorf("the child's GOMAXPROCS is not 1:\n%s", out)
	}
	if threads < 3 {
		t.Fatalf("child reported %d threads:\n%s", threads, out)
	}
}

// pinChild pins this process, makes the runtime start more threads with
// blocking system calls, and prints every thread's CPUs.
func pinChild() {
	cpu, _ := strconv.Atoi(os.Getenv("STOA_BENCH_PIN_CHILD"))
	if err := pinSelf([]int{cpu}); err != nil {
		fmt.Println("pinSelf:", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { _ = exec.Command("sleep", "0.2").Run() })
	}
	wg.Wait()
	fmt.Println("gomaxprocs", runtime.GOMAXPROCS(0))
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
				fmt.Println("thread", task.Name(), strings.TrimSpace(v))
			}
		}
	}
	os.Exit(0)
}
