package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	// ModeParam on the kernel command line selects how the agent runs as PID 1:
	// "peerpods.podvm=disk" when the VM booted from its disk image (CAA's libvirt path);
	// absent, the direct-boot mode (the suite's own LPAR provider) runs unchanged.
	ModeParam = "peerpods.podvm"
	// ForwarderPort is the agent-protocol-forwarder's port in a peer pod VM; CAA counts
	// the VM ready once a TCP connection to it succeeds.
	ForwarderPort = 15150
	// ApfConfig is where CAA's user data puts the forwarder's configuration.
	ApfConfig = PeerpodDir + "/apf.json"
)

// DiskReport is the report of a pod VM booted from its disk: the direct-boot report's
// fields (so the host parses them with the same class) and what the disk mode adds.
type DiskReport struct {
	Report
	// Mode is "disk".
	Mode string `json:"mode"`
	// Address is the IPv4 address/prefix the NIC got by DHCP; null when it got none.
	Address *string `json:"address"`
	// Router is the default gateway DHCP gave; null when none.
	Router *string `json:"router"`
	// PodNetwork is the "pod-network" object of apf.json as the user data wrote it; null
	// when apf.json is missing, unreadable or has none.
	PodNetwork json.RawMessage `json:"pod_network"`
	// NetworkError says why the NIC has no address; null when it has one.
	NetworkError *string `json:"network_error"`
	// Listening is true when the agent listens on ForwarderPort (the user data applied).
	Listening bool `json:"listening"`
}

// JSON renders the report on one line, with the direct-boot fields normalised as there.
func (r DiskReport) JSON() string {
	if r.Written == nil {
		r.Written = map[string]string{}
	}
	if r.Ignored == nil {
		r.Ignored = []string{}
	}
	sort.Strings(r.Ignored)
	out, err := json.Marshal(r)
	if err != nil {
		return `{"error": "report encoding failed"}`
	}
	return string(out)
}

// kernelParam is the value of name=value on the kernel command line ("" when absent).
func kernelParam(cmdline string, name string) string {
	for _, field := range strings.Fields(cmdline) {
		if key, value, found := strings.Cut(field, "="); found && key == name {
			return value
		}
	}
	return ""
}

// bootMode reads the mode from /proc/cmdline (mounting /proc first if needed).
func bootMode() string {
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		if mountBasics() != nil {
			return ""
		}
		data, err = os.ReadFile("/proc/cmdline")
		if err != nil {
			return ""
		}
	}
	return kernelParam(string(data), ModeParam)
}

// bootFromDisk is the life of a pod VM booted from its disk image, standing for what the
// real pod VM image's services do: apply the user data (process-user-data), bring the NIC
// up with DHCP (the image's network configuration), listen on ForwarderPort (the
// agent-protocol-forwarder), print the report, and keep running until the VM is destroyed.
func bootFromDisk() {
	arch := guestArch()
	report := DiskReport{Mode: "disk"}
	if err := mountBasics(); err != nil {
		report.Report = failedReport(arch, readMachineType(), err)
		printReport(report.JSON())
		waitForever()
	}
	lease := make(chan leaseResult, 1)
	// The NIC's driver is loaded by applyCidata with the other modules; DHCP waits for the
	// interface to appear, so both proceed at once.
	go func() { lease <- configureNetwork(networkWait) }()
	report.Report = applyCidata(arch)
	report.PodNetwork = podNetwork(ApfConfig)
	got := <-lease
	if got.err != nil {
		message := got.err.Error()
		report.NetworkError = &message
	} else {
		report.Address = &got.address
		if got.router != "" {
			report.Router = &got.router
		}
	}
	var listener net.Listener
	if report.Error == nil {
		var err error
		listener, err = net.Listen("tcp", fmt.Sprintf(":%d", ForwarderPort))
		if err != nil {
			message := fmt.Sprintf("listen on port %d: %v", ForwarderPort, err)
			report.NetworkError = &message
		}
	}
	report.Listening = listener != nil
	line := report.JSON()
	if listener != nil {
		go serveForwarder(listener, line)
	}
	printReport(line)
	syscall.Sync()
	waitForever()
}

// serveForwarder accepts every connection to the forwarder's port and answers it with the
// report line, then closes it: a readiness probe (CAA dials and hangs up) only needs the
// accept; a host that reads gets the same report as the console's.
func serveForwarder(listener net.Listener, line string) {
	for {
		conn, err := listener.Accept()
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func(conn net.Conn) {
			defer conn.Close()
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = fmt.Fprintf(conn, "%s%s\n", ReportPrefix, line)
		}(conn)
	}
}

// podNetwork is apf.json's "pod-network" value, verbatim; nil when there is none.
func podNetwork(path string) json.RawMessage {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var config map[string]json.RawMessage
	if json.Unmarshal(data, &config) != nil {
		return nil
	}
	value, ok := config["pod-network"]
	if !ok || string(value) == "null" {
		return nil
	}
	return value
}

// waitForever keeps PID 1 alive (its exit would panic the kernel) until the VM is destroyed.
func waitForever() {
	for {
		time.Sleep(time.Hour)
	}
}
