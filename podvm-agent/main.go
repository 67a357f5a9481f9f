// Command podvm-agent is the init process of the emulated s390x pod VM.
//
// Run as PID 1 it mounts the cloud-init disk, processes the user data as a peer pod VM
// does, prints one machine-readable report line on the console and powers the VM off.
// With peerpods.podvm=disk on the kernel command line (the VM booted from its disk image,
// as CAA's libvirt provider boots it) it also takes a DHCP lease, listens on the
// agent-protocol-forwarder's port 15150 and keeps running; see disk.go.
// Run as "podvm-agent process ..." it does the processing on a host directory, so the
// suite can check the guest logic against its reference implementation without booting.
package main

import (
	"flag"
	"fmt"
	"os"
)

// ReportPrefix marks the one console line the host reads back; everything else on the
// console (kernel messages) is ignored.
const ReportPrefix = "PEERPODS-GUEST-REPORT "

func main() {
	if os.Getpid() == 1 {
		if bootMode() == "disk" {
			bootFromDisk()
		}
		bootAsInit()
		return
	}
	if len(os.Args) < 2 || os.Args[1] != "process" {
		fmt.Fprintln(os.Stderr, "usage: podvm-agent process --user-data FILE --root DIR [--machine M] [--arch A]")
		os.Exit(2)
	}
	flags := flag.NewFlagSet("process", flag.ExitOnError)
	userData := flags.String("user-data", "", "cloud-config file to process")
	root := flags.String("root", "", "directory standing in for the guest's /")
	machine := flags.String("machine", "", "machine type to report (empty: none)")
	arch := flags.String("arch", "s390x", "architecture to report")
	_ = flags.Parse(os.Args[2:])
	if *userData == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "podvm-agent process: --user-data and --root are required")
		os.Exit(2)
	}
	text, err := os.ReadFile(*userData)
	var report Report
	if err != nil {
		report = failedReport(*arch, optional(*machine), err)
	} else {
		report = ProcessUserData(string(text), *root, *arch, optional(*machine))
	}
	fmt.Println(report.JSON())
}

func optional(value string) *string {
	if value == "" {
		return nil
	}
	return &value
}
