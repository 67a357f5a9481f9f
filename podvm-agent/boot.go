package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	// ModuleList names, one a line and in load order, the kernel modules the image carries
	// because Debian's s390x kernel builds them as modules (virtio_blk, isofs, ...).
	ModuleList  = "/etc/podvm-modules"
	cidataMount = "/mnt/cidata"
	// cidataWait bounds the search for the cloud-init disk; the host's own timeout is the
	// real limit, this only keeps a broken guest from hanging without a report.
	cidataWait = 20 * time.Second
)

// bootAsInit is the whole life of the directly booted pod VM: set up, process, report,
// power off.
func bootAsInit() {
	arch := guestArch()
	var report Report
	if err := mountBasics(); err != nil {
		report = failedReport(arch, readMachineType(), err)
	} else {
		report = applyCidata(arch)
	}
	printReport(report.JSON())
	syscall.Sync()
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {} // PID 1 must not exit; the power-off above ends the VM
}

// applyCidata loads the listed modules, finds the cidata disk, mounts it and applies its
// user data to / (the same processing whichever way the VM booted). /proc, /sys, /dev
// and /run must be mounted.
func applyCidata(arch string) Report {
	machine := readMachineType()
	report := func() Report {
		loadModules()
		device, err := findCidata(cidataWait)
		if err != nil {
			return failedReport(arch, machine, err)
		}
		if err := os.MkdirAll(cidataMount, 0o755); err != nil {
			return failedReport(arch, machine, err)
		}
		if err := syscall.Mount(device, cidataMount, "iso9660", syscall.MS_RDONLY, ""); err != nil {
			return failedReport(arch, machine, fmt.Errorf("mount %s (iso9660): %w", device, err))
		}
		text, err := os.ReadFile(filepath.Join(cidataMount, "user-data"))
		if err != nil {
			return failedReport(arch, machine, fmt.Errorf("cidata disk %s: %w", device, err))
		}
		return ProcessUserData(string(text), "/", arch, readMachineType())
	}()
	if report.Machine == nil {
		report.Machine = readMachineType()
	}
	return report
}

// printReport writes the one report line on the console (the host reads it there).
func printReport(body string) {
	console := os.Stdout
	if tty, err := os.OpenFile("/dev/console", os.O_WRONLY, 0); err == nil {
		console = tty
		defer tty.Close()
	}
	fmt.Fprintf(console, "\n%s%s\n", ReportPrefix, body)
	_ = console.Sync()
}

func mountBasics() error {
	mounts := []struct{ source, target, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/run", "tmpfs"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		err := syscall.Mount(m.source, m.target, m.fstype, 0, "")
		if err != nil && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.target, err)
		}
	}
	return nil
}

// loadModules inserts each listed module; one already built in or loaded is fine.
func loadModules() {
	file, err := os.Open(ModuleList)
	if err != nil {
		return
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		name := strings.TrimSpace(scanner.Text())
		if name == "" {
			continue
		}
		module, err := os.Open(filepath.Join("/lib/modules", name))
		if err != nil {
			fmt.Fprintf(os.Stderr, "podvm-agent: module %s: %v\n", name, err)
			continue
		}
		if sysFinitModule == 0 {
			fmt.Fprintf(os.Stderr, "podvm-agent: cannot load %s on this architecture\n", name)
			module.Close()
			continue
		}
		empty, _ := syscall.BytePtrFromString("")
		_, _, errno := syscall.Syscall(sysFinitModule, module.Fd(), uintptrOf(empty), 0)
		if errno != 0 && errno != syscall.EEXIST {
			fmt.Fprintf(os.Stderr, "podvm-agent: load %s: %v\n", name, errno)
		}
		module.Close()
	}
}

// cidataCandidates are the block devices that may hold the cidata disk: virtio disks
// (CAA's s390x domain), CD-ROMs (its x86_64 domain: an IDE cdrom) and SCSI/SATA disks.
var cidataCandidates = []string{"/sys/block/vd*", "/sys/block/sr*", "/sys/block/sd*"}

// findCidata returns the block device whose ISO 9660 volume label is "cidata" (NoCloud),
// rather than trusting the probe order of the disks.
func findCidata(wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		var entries []string
		for _, pattern := range cidataCandidates {
			found, _ := filepath.Glob(pattern)
			entries = append(entries, found...)
		}
		sort.Strings(entries)
		for _, entry := range entries {
			device := "/dev/" + filepath.Base(entry)
			if isoLabel(device) == "cidata" {
				return device, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no disk labelled cidata appeared within %s (found %v)", wait, entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isoLabel(device string) string {
	file, err := os.Open(device)
	if err != nil {
		return ""
	}
	defer file.Close()
	descriptor := make([]byte, 72)
	if _, err := file.ReadAt(descriptor, 16*2048); err != nil {
		return ""
	}
	if descriptor[0] != 1 || string(descriptor[1:6]) != "CD001" {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(string(descriptor[40:72])))
}

// guestArch is the architecture the report names (s390x, x86_64).
func guestArch() string { return archName }

// readMachineType reads "Type: 8561" from /proc/sysinfo, the machine the LPAR reports.
func readMachineType() *string {
	data, err := os.ReadFile("/proc/sysinfo")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 2 && fields[0] == "Type:" {
			return &fields[1]
		}
	}
	return nil
}
