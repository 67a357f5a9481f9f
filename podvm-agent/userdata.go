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
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
)

// The peer pod VM's fixed places (spec section 5).
const (
	PeerpodDir      = "/run/peerpod"
	InitdataPath    = PeerpodDir + "/initdata"
	DigestPath      = PeerpodDir + "/initdata.digest"
	MaxDecodedBytes = 1 << 20 // a gzip bomb is cut off here, with bounded memory
	// The same bounds as the reference (sim/bounds.py): encoded size, gzip members, TOML depth.
	MaxEncodedBytes = 1 << 20
	MaxGzipMembers  = 16
	MaxTomlDepth    = 64
	cloudConfigHead = "#cloud-config"
)

// AllowedFiles are the only initdata [data] keys the pod VM writes; any other key is ignored.
var AllowedFiles = []string{"aa.toml", "cdh.toml", "policy.rego"}

// WriteFilesAllowed are the only write_files paths the pod VM writes, compared as written
// (CAA v0.22.0 pkg/userdata/provision.go, WriteFilesList and isAllowed); any other is skipped.
var WriteFilesAllowed = []string{
	PeerpodDir + "/aa.toml",
	PeerpodDir + "/cdh.toml",
	PeerpodDir + "/apf.json",
	PeerpodDir + "/auth.json",
	InitdataPath,
	PeerpodDir + "/scratch-space.marker",
}

// DummyEncoded is the initdata the pod VM writes for itself when none was delivered: the
// same bytes as sim.peerpods.initdata.DUMMY_ENCODED, so host and guest digest the same document.
const DummyEncoded = "H4sIAAAAAAACA0vMSc8vyizJyFWwVVAqzkg0MjVT4ipLLSrOzM8DCRnoGeoZKHFxRackliTGciklJuqV5OfmKAHl1NXVuYAYACVzsg5CAAAA"

var algorithms = []string{"sha256", "sha384", "sha512"}

type writeFile struct {
	Path    string
	Content string
}

// ProcessUserData does to root what the pod VM does to its / with the cloud-config text;
// the rules and their order are those of sim/peerpods/podvm.py.
func ProcessUserData(text string, root string, arch string, machine *string) Report {
	report := Report{Arch: arch, Machine: machine, Written: map[string]string{}, Ignored: []string{}}
	if err := process(text, root, &report); err != nil {
		message := err.Error()
		report.Error = &message
	}
	return report
}

func process(text string, root string, report *Report) error {
	var files []writeFile
	if strings.TrimSpace(text) != "" {
		parsed, err := parseCloudConfig(text)
		if err != nil {
			return err
		}
		files = parsed
	}
	var encoded *string
	for _, file := range files {
		if !oneOf(file.Path, WriteFilesAllowed) {
			continue // skipped, never written, not an error
		}
		if err := writeUnder(root, file.Path, []byte(file.Content), report); err != nil {
			return err
		}
		if file.Path == InitdataPath {
			content := file.Content
			encoded = &content
		}
	}
	if encoded == nil {
		report.Dummy = true
		dummy := DummyEncoded
		encoded = &dummy
		if err := writeUnder(root, InitdataPath, []byte(dummy), report); err != nil {
			return err
		}
	}
	return applyInitdata(*encoded, root, report)
}

func parseCloudConfig(text string) ([]writeFile, error) {
	first := strings.TrimRight(strings.SplitN(text, "\n", 2)[0], "\r")
	if strings.TrimSpace(first) != cloudConfigHead {
		return nil, fmt.Errorf("user data does not start with %q", cloudConfigHead)
	}
	var doc interface{}
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, fmt.Errorf("user data is not valid YAML: %w", err)
	}
	if doc == nil {
		return nil, nil
	}
	top, ok := doc.(map[string]interface{})
	if !ok {
		return nil, errors.New("user data must be a mapping")
	}
	for key := range top {
		if key != "write_files" {
			return nil, fmt.Errorf("user data has unsupported top-level key %q", key)
		}
	}
	raw, present := top["write_files"]
	if !present || raw == nil {
		return nil, nil
	}
	list, ok := raw.([]interface{})
	if !ok {
		return nil, errors.New("user data write_files must be a list")
	}
	files := make([]writeFile, 0, len(list))
	for index, item := range list {
		entry, err := parseEntry(index, item)
		if err != nil {
			return nil, err
		}
		files = append(files, entry)
	}
	return files, nil
}

func parseEntry(index int, item interface{}) (writeFile, error) {
	where := fmt.Sprintf("user data write_files[%d]", index)
	fields, ok := item.(map[string]interface{})
	if !ok {
		return writeFile{}, fmt.Errorf("%s: expected a mapping with 'path' and 'content'", where)
	}
	for key := range fields {
		if key != "path" && key != "content" && key != "permissions" {
			return writeFile{}, fmt.Errorf("%s: unknown key %q", where, key)
		}
	}
	p, ok := fields["path"].(string)
	if !ok || p == "" {
		return writeFile{}, fmt.Errorf("%s: 'path' must be a non-empty string", where)
	}
	content := ""
	if value, present := fields["content"]; present && value != nil {
		text, ok := value.(string)
		if !ok {
			return writeFile{}, fmt.Errorf("%s (%s): 'content' must be a string", where, p)
		}
		content = text
	}
	if value, present := fields["permissions"]; present {
		if _, ok := value.(string); !ok {
			return writeFile{}, fmt.Errorf("%s (%s): 'permissions' must be a quoted string", where, p)
		}
	}
	return writeFile{Path: p, Content: content}, nil
}

func writeUnder(root string, guestPath string, content []byte, report *Report) error {
	target := filepath.Join(root, filepath.FromSlash(guestPath))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if info, err := os.Lstat(target); err == nil && info.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("refusing to write %s: it is a symlink", guestPath)
	}
	if err := os.WriteFile(target, content, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(target, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(content)
	report.Written[guestPath] = hex.EncodeToString(sum[:])
	return nil
}

func decodeInitdata(encoded string) ([]byte, error) {
	if len(encoded) > MaxEncodedBytes {
		return nil, fmt.Errorf("encoded initdata is %d bytes, over %d; refused before decoding", len(encoded), MaxEncodedBytes)
	}
	text := strings.NewReplacer("\r", "", "\n", "").Replace(encoded)
	if text == "" {
		return nil, errors.New("initdata is empty")
	}
	if problem := base64Offence(text); problem != "" {
		return nil, fmt.Errorf("initdata is not standard base64: %s", problem)
	}
	if short := (4 - len(text)%4) % 4; short != 0 {
		return nil, fmt.Errorf("initdata is not valid base64: length %d is not a multiple of 4 (%d '=' padding character(s) missing?)", len(text), short)
	}
	raw, err := base64.StdEncoding.DecodeString(text) // not Strict(): CAA ignores unused trailing bits too
	if err != nil {
		return nil, fmt.Errorf("initdata is not valid base64: %w", err)
	}
	if !bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		return nil, errors.New("initdata is not gzip-compressed")
	}
	source := bytes.NewReader(raw)
	reader, err := gzip.NewReader(source)
	if err != nil {
		return nil, fmt.Errorf("initdata is not valid gzip data: %w", err)
	}
	defer reader.Close()
	// One member at a time, counted: empty members produce no output, so only a count bounds them.
	var decoded bytes.Buffer
	for members := 1; ; members++ {
		if members > MaxGzipMembers {
			return nil, fmt.Errorf("initdata has more than %d gzip members; refused", MaxGzipMembers)
		}
		reader.Multistream(false)
		_, err := io.Copy(&decoded, io.LimitReader(reader, int64(MaxDecodedBytes+1-decoded.Len())))
		if decoded.Len() > MaxDecodedBytes {
			return nil, fmt.Errorf("decoded initdata exceeds %d bytes; refused", MaxDecodedBytes)
		}
		if err != nil {
			return nil, fmt.Errorf("initdata is not valid gzip data: %w", err)
		}
		if source.Len() == 0 {
			break
		}
		if err := reader.Reset(source); err != nil {
			return nil, fmt.Errorf("initdata has trailing data after the gzip stream: %w", err)
		}
	}
	return decoded.Bytes(), nil
}

// base64Offence names the first character outside the standard alphabet or misplaced
// padding, so a user sees where the string breaks, not just that it does.
func base64Offence(text string) string {
	for position, char := range text {
		if char == '=' {
			padding := text[position:]
			if strings.Trim(padding, "=") != "" || len(padding) > 2 {
				return fmt.Sprintf("'=' padding at position %d is not at the end or is longer than 2", position)
			}
			return ""
		}
		if !(char >= 'A' && char <= 'Z' || char >= 'a' && char <= 'z' || char >= '0' && char <= '9' || char == '+' || char == '/') {
			return fmt.Sprintf("%q at position %d is not in the standard alphabet", char, position)
		}
	}
	return ""
}

func newHash(algorithm string) hash.Hash {
	switch algorithm {
	case "sha384":
		return sha512.New384()
	case "sha512":
		return sha512.New()
	}
	return sha256.New()
}

func oneOf(value string, allowed []string) bool {
	for _, candidate := range allowed {
		if value == candidate {
			return true
		}
	}
	return false
}

// tooDeep reports a table or array more than MaxTomlDepth levels down (the document
// itself is level 0), as the reference counts.
func tooDeep(value interface{}, depth int) bool {
	switch v := value.(type) {
	case map[string]interface{}:
		if depth > MaxTomlDepth {
			return true
		}
		for _, child := range v {
			if tooDeep(child, depth+1) {
				return true
			}
		}
	case []interface{}:
		if depth > MaxTomlDepth {
			return true
		}
		for _, child := range v {
			if tooDeep(child, depth+1) {
				return true
			}
		}
	case []map[string]interface{}:
		if depth > MaxTomlDepth {
			return true
		}
		for _, child := range v {
			if tooDeep(child, depth+1) {
				return true
			}
		}
	}
	return false
}

func textField(doc map[string]interface{}, key string, allowed []string) (string, error) {
	raw, present := doc[key]
	if !present {
		return "", fmt.Errorf("%s: missing '%s'", InitdataPath, key)
	}
	value, ok := raw.(string)
	if !ok {
		return "", fmt.Errorf("%s: '%s' must be a string", InitdataPath, key)
	}
	if !oneOf(value, allowed) {
		return "", fmt.Errorf("%s: unknown %s %q (expected one of %s)", InitdataPath, key, value, strings.Join(allowed, ", "))
	}
	return value, nil
}

type initdataDoc struct {
	algorithm string
	data      map[string]string
	keys      []string // [data] keys in document order, as the reference iterates them
}

func parseInitdata(tomlBytes []byte) (initdataDoc, error) {
	if !utf8.Valid(tomlBytes) {
		return initdataDoc{}, fmt.Errorf("%s: not UTF-8 text", InitdataPath)
	}
	var doc map[string]interface{}
	meta, err := toml.Decode(string(tomlBytes), &doc)
	if err != nil {
		return initdataDoc{}, fmt.Errorf("%s: not valid TOML: %w", InitdataPath, err)
	}
	if tooDeep(doc, 0) {
		return initdataDoc{}, fmt.Errorf("%s: not valid TOML: nested more than %d levels deep", InitdataPath, MaxTomlDepth)
	}
	algorithm, err := textField(doc, "algorithm", algorithms)
	if err != nil {
		return initdataDoc{}, err
	}
	// Like CAA's initdata.Parse, the version is not checked (a string when present).
	if raw, present := doc["version"]; present {
		if _, ok := raw.(string); !ok {
			return initdataDoc{}, fmt.Errorf("%s: 'version' must be a string", InitdataPath)
		}
	}
	result := initdataDoc{algorithm: algorithm, data: map[string]string{}}
	raw, present := doc["data"]
	if !present {
		return result, nil
	}
	table, ok := raw.(map[string]interface{})
	if !ok {
		return initdataDoc{}, fmt.Errorf("%s: 'data' must be a table of file name -> content", InitdataPath)
	}
	for _, key := range meta.Keys() {
		if len(key) == 2 && key[0] == "data" {
			result.keys = append(result.keys, key[1])
		}
	}
	for name, value := range table {
		content, ok := value.(string)
		if !ok {
			return initdataDoc{}, fmt.Errorf("%s: data.%q must be a string", InitdataPath, name)
		}
		result.data[name] = content
	}
	if len(result.keys) != len(result.data) { // order unknown (e.g. inline table): any order will do
		result.keys = result.keys[:0]
		for name := range result.data {
			result.keys = append(result.keys, name)
		}
		sort.Strings(result.keys)
	}
	return result, nil
}

// applyInitdata validates everything before writing anything, then writes the allowed
// files and the digest of the decoded TOML bytes.
func applyInitdata(encoded string, root string, report *Report) error {
	tomlBytes, err := decodeInitdata(encoded)
	if err != nil {
		return err
	}
	doc, err := parseInitdata(tomlBytes)
	if err != nil {
		return err
	}
	h := newHash(doc.algorithm)
	h.Write(tomlBytes)
	digest := hex.EncodeToString(h.Sum(nil))
	for _, key := range doc.keys {
		target := path.Join(PeerpodDir, key)
		if !allowedPath(target) {
			report.Ignored = append(report.Ignored, key)
			continue
		}
		if err := writeUnder(root, target, []byte(doc.data[key]), report); err != nil {
			return err
		}
	}
	if err := writeUnder(root, DigestPath, []byte(digest), report); err != nil {
		return err
	}
	report.Algorithm = doc.algorithm
	report.Digest = digest
	return nil
}

func allowedPath(p string) bool {
	for _, name := range AllowedFiles {
		if p == PeerpodDir+"/"+name {
			return true
		}
	}
	return false
}
