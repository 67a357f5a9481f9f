package main

// sysFinitModule is finit_module(2) on s390x (Go's frozen syscall table has it).
const sysFinitModule = 344

// archName is the architecture the report names, as uname -m and libvirt spell it.
const archName = "s390x"
