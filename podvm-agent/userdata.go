package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
)

// The peer pod VM's fixed places (spec section 5).
const (
	PeerpodDir      = "/run/peerpod"
	InitdataPath    = PeerpodDir + "/initdata"
	DigestPath      = PeerpodDir + "/initdata.digest"
	MaxDecodedBytes = 1 << 20 // a gzip bomb is cut off here, with bounded memory
)

// AllowedFiles are the only initdata [data] keys the pod VM writes; any other key is ignored.
var AllowedFiles = []string{"aa.toml", "cdh.toml", "policy.rego"}

// DummyTOML is what the pod VM digests when no initdata reached it.
const DummyTOML = "algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"aa.toml\" = \"\"\n"

type writeFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Permissions string `yaml:"permissions"`
}

type cloudConfig struct {
	WriteFiles []writeFile `yaml:"write_files"`
}

type initdataDoc struct {
	Algorithm string            `toml:"algorithm"`
	Version   string            `toml:"version"`
	Data      map[string]string `toml:"data"`
}

// ProcessUserData does to root what the pod VM does to its / with the cloud-config text.
func ProcessUserData(text string, root string, arch string, machine *string) Report {
	report := Report{Arch: arch, Machine: machine, Written: map[string]string{}, Ignored: []string{}}
	if err := process(text, root, &report); err != nil {
		message := err.Error()
		report.Error = &message
	}
	return report
}

func process(text string, root string, report *Report) error {
	files, err := parseCloudConfig(text)
	if err != nil {
		return err
	}
	for _, file := range files {
		if !allowedWritePath(file.Path) {
			continue // only the peer pod directory is provisioned from user data
		}
		mode, err := parseMode(file.Permissions)
		if err != nil {
			return fmt.Errorf("write_files %s: %w", file.Path, err)
		}
		if err := writeUnder(root, file.Path, []byte(file.Content), mode, report); err != nil {
			return err
		}
	}
	encoded, err := os.ReadFile(filepath.Join(root, InitdataPath))
	var tomlBytes []byte
	switch {
	case errors.Is(err, os.ErrNotExist) || (err == nil && len(bytes.TrimSpace(encoded)) == 0):
		report.Dummy = true
		tomlBytes = []byte(DummyTOML)
	case err != nil:
		return fmt.Errorf("%s: %w", InitdataPath, err)
	default:
		tomlBytes, err = decodeInitdata(string(encoded))
		if err != nil {
			return fmt.Errorf("%s: %w", InitdataPath, err)
		}
	}
	return applyInitdata(tomlBytes, root, report)
}

func parseCloudConfig(text string) ([]writeFile, error) {
	if !strings.HasPrefix(text, "#cloud-config") {
		return nil, errors.New("user data is not a cloud-config (no #cloud-config header)")
	}
	var config cloudConfig
	if err := yaml.Unmarshal([]byte(text), &config); err != nil {
		return nil, fmt.Errorf("user data is not valid YAML: %w", err)
	}
	return config.WriteFiles, nil
}

// allowedWritePath accepts only clean absolute paths inside the peer pod directory, so a
// "../" in user data cannot reach the rest of the guest.
func allowedWritePath(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && strings.HasPrefix(p, PeerpodDir+"/")
}

func parseMode(permissions string) (os.FileMode, error) {
	if permissions == "" {
		return 0o644, nil
	}
	value, err := strconv.ParseUint(permissions, 8, 32)
	if err != nil || value > 0o7777 {
		return 0, fmt.Errorf("permissions %q is not an octal file mode", permissions)
	}
	return os.FileMode(value), nil
}

func writeUnder(root string, guestPath string, content []byte, mode os.FileMode, report *Report) error {
	target := filepath.Join(root, filepath.FromSlash(guestPath))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(target, content, mode); err != nil {
		return err
	}
	sum := sha256.Sum256(content)
	report.Written[guestPath] = hex.EncodeToString(sum[:])
	return nil
}

func decodeInitdata(encoded string) ([]byte, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return nil, fmt.Errorf("initdata is not valid base64: %w", err)
	}
	reader, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("initdata is not gzip: %w", err)
	}
	defer reader.Close()
	decoded, err := io.ReadAll(io.LimitReader(reader, MaxDecodedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("initdata is not valid gzip: %w", err)
	}
	if len(decoded) > MaxDecodedBytes {
		return nil, fmt.Errorf("initdata decodes to more than %d bytes", MaxDecodedBytes)
	}
	return decoded, nil
}

func newHash(algorithm string) (hash.Hash, error) {
	switch algorithm {
	case "sha256":
		return sha256.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha512":
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("initdata algorithm %q is not one of sha256, sha384, sha512", algorithm)
}

func applyInitdata(tomlBytes []byte, root string, report *Report) error {
	var doc initdataDoc
	meta, err := toml.Decode(string(tomlBytes), &doc)
	if err != nil {
		return fmt.Errorf("initdata is not valid TOML: %w", err)
	}
	for _, key := range []string{"algorithm", "version", "data"} {
		if !meta.IsDefined(key) {
			return fmt.Errorf("initdata has no %s", key)
		}
	}
	h, err := newHash(doc.Algorithm)
	if err != nil {
		return err
	}
	report.Algorithm = doc.Algorithm
	h.Write(tomlBytes)
	report.Digest = hex.EncodeToString(h.Sum(nil))
	keys := make([]string, 0, len(doc.Data))
	for key := range doc.Data {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if !allowedFile(key) {
			report.Ignored = append(report.Ignored, key)
			continue
		}
		if err := writeUnder(root, PeerpodDir+"/"+key, []byte(doc.Data[key]), 0o644, report); err != nil {
			return err
		}
	}
	return writeUnder(root, DigestPath, []byte(report.Digest), 0o644, report)
}

func allowedFile(key string) bool {
	for _, allowed := range AllowedFiles {
		if key == allowed {
			return true
		}
	}
	return false
}
