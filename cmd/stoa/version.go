package main

import (
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version prints the module version and, when the build recorded them,
// the VCS revision and time.
func version(args []string, sys system) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(sys.stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	v, rev, when, dirty := "(unknown)", "", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " (modified)"
				}
			}
		}
	}
	fmt.Fprintf(sys.stdout, "stoa %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if rev != "" {
		fmt.Fprintf(sys.stdout, "revision %s %s%s\n", rev, when, dirty)
	}
	return nil
}
