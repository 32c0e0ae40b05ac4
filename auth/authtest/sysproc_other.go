//go:build !linux

package authtest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
