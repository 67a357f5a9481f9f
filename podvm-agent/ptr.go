package main

import "unsafe"

// uintptrOf passes a C string to a raw system call (finit_module's parameter string).
func uintptrOf(p *byte) uintptr { return uintptr(unsafe.Pointer(p)) }
