package main

// sysFinitModule is finit_module(2) on x86_64 (missing from Go's frozen syscall table).
const sysFinitModule = 313

// archName is the architecture the report names, as uname -m and libvirt spell it.
const archName = "x86_64"
