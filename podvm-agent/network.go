package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	// Busybox is busybox-static in the initramfs; its udhcpc and ip applets set up the NIC.
	Busybox = "/bin/busybox"
	// udhcpcScript is written at boot and run by udhcpc for each DHCP event.
	udhcpcScript = "/run/podvm-udhcpc.sh"
	// leaseFile is where the script records "address/prefix router" of the lease it applied.
	leaseFile = "/run/podvm-lease"
	// networkWait bounds the wait for a NIC and a lease; CAA's own wait is 20 x 3 s.
	networkWait = 30 * time.Second
)

// dhcpScript applies a lease the way a minimal distribution's udhcpc script does: the
// address and prefix on the interface, the first router as the default route.
const dhcpScript = `#!/bin/sh
case "$1" in
deconfig)
	/bin/busybox ip -4 addr flush dev "$interface"
	;;
bound|renew)
	/bin/busybox ip -4 addr flush dev "$interface"
	/bin/busybox ip addr add "$ip/${mask:-24}" dev "$interface"
	gw="${router%% *}"
	if [ -n "$gw" ]; then
		/bin/busybox ip route replace default via "$gw" dev "$interface"
	fi
	echo "$ip/${mask:-24} $gw" > /run/podvm-lease
	;;
esac
exit 0
`

type leaseResult struct {
	address string // "a.b.c.d/prefix"
	router  string
	err     error
}

// configureNetwork brings up lo and the first NIC, and runs busybox udhcpc on it until it
// holds a lease (udhcpc then exits: a pod VM lives far shorter than a lease).
func configureNetwork(wait time.Duration) leaseResult {
	deadline := time.Now().Add(wait)
	_ = exec.Command(Busybox, "ip", "link", "set", "lo", "up").Run()
	nic, err := waitForNIC(deadline)
	if err != nil {
		return leaseResult{err: err}
	}
	if out, err := exec.Command(Busybox, "ip", "link", "set", nic, "up").CombinedOutput(); err != nil {
		return leaseResult{err: fmt.Errorf("ip link set %s up: %v: %s", nic, err, strings.TrimSpace(string(out)))}
	}
	if err := os.WriteFile(udhcpcScript, []byte(dhcpScript), 0o755); err != nil {
		return leaseResult{err: err}
	}
	tries := int(time.Until(deadline) / time.Second)
	if tries < 1 {
		tries = 1
	}
	// -f foreground, -q quit once bound, -n fail when no lease, -t tries of -T 1 s each,
	// -A 1: retry a failed round after 1 s.
	command := exec.Command(Busybox, "udhcpc", "-i", nic, "-f", "-q", "-n",
		"-t", fmt.Sprint(tries), "-T", "1", "-A", "1", "-s", udhcpcScript)
	out, err := command.CombinedOutput()
	if err != nil {
		return leaseResult{err: fmt.Errorf("udhcpc on %s found no lease: %v: %s", nic, err, lastLine(string(out)))}
	}
	data, err := os.ReadFile(leaseFile)
	if err != nil {
		return leaseResult{err: fmt.Errorf("udhcpc on %s exited without applying a lease: %s", nic, lastLine(string(out)))}
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return leaseResult{err: errors.New("udhcpc recorded an empty lease")}
	}
	result := leaseResult{address: fields[0]}
	if len(fields) > 1 {
		result.router = fields[1]
	}
	return result
}

// waitForNIC returns the first network interface other than lo, once its driver made it.
func waitForNIC(deadline time.Time) (string, error) {
	for {
		entries, _ := filepath.Glob("/sys/class/net/*")
		var names []string
		for _, entry := range entries {
			if name := filepath.Base(entry); name != "lo" {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		if len(names) > 0 {
			return names[0], nil
		}
		if time.Now().After(deadline) {
			return "", errors.New("no network interface appeared (is the NIC's driver in the image?)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastLine(text string) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	return lines[len(lines)-1]
}
