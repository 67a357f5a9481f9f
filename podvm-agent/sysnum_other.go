//go:build !amd64 && !s390x

package main

// The agent runs as a pod VM's init on s390x and x86_64 only; elsewhere it builds for its
// "process" mode (host-side tests), and loading a kernel module is refused (no system call number).
const sysFinitModule = 0

const archName = "unknown"
