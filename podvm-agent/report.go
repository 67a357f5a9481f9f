package main

import (
	"encoding/json"
	"sort"
)

// Report is what the pod VM did with its user data. Its JSON keys are exactly those of
// sim.peerpods.podvm.GuestReport, so the host parses the guest's line with the reference class.
type Report struct {
	Arch      string            `json:"arch"`
	Machine   *string           `json:"machine"`
	Algorithm string            `json:"algorithm"`
	Digest    string            `json:"digest"`
	Dummy     bool              `json:"dummy"`
	Written   map[string]string `json:"written"`
	Ignored   []string          `json:"ignored"`
	Error     *string           `json:"error"`
}

// JSON renders the report on one line (the console reader looks for exactly one line).
func (r Report) JSON() string {
	if r.Written == nil {
		r.Written = map[string]string{}
	}
	if r.Ignored == nil {
		r.Ignored = []string{}
	}
	sort.Strings(r.Ignored)
	out, err := json.Marshal(r)
	if err != nil { // cannot happen for these field types; keep the line parseable anyway
		return `{"error": "report encoding failed"}`
	}
	return string(out)
}

func failedReport(arch string, machine *string, err error) Report {
	message := err.Error()
	return Report{Arch: arch, Machine: machine, Written: map[string]string{}, Ignored: []string{}, Error: &message}
}
