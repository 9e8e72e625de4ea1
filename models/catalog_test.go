package models

import (
	"regexp"
	"testing"
)

// TestCatalog checks the table's shape; the values themselves come from the upstream records
// named in catalog.go.
func TestCatalog(t *testing.T) {
	hexRe := regexp.MustCompile(`^[0-9a-f]{64}$`)
	nameRe := regexp.MustCompile(`^(tiny|base|small|medium|large-v3)(\.en)?(-turbo)?(-q5_0|-q5_1|-q8_0)?$`)
	seenName, seenHash := map[string]bool{}, map[string]bool{}
	for _, e := range Catalog {
		if !nameRe.MatchString(e.Name) || seenName[e.Name] {
			t.Errorf("bad or repeated name %q", e.Name)
		}
		if !hexRe.MatchString(e.SHA256) || seenHash[e.SHA256] {
			t.Errorf("%s: bad or repeated sha256 %q", e.Name, e.SHA256)
		}
		if e.Size < 30_000_000 || e.Size > 3_200_000_000 {
			t.Errorf("%s: implausible size %d", e.Name, e.Size)
		}
		seenName[e.Name], seenHash[e.SHA256] = true, true
	}
	for _, n := range []string{"tiny", "tiny.en", "base", "base.en", "small", "small.en", "medium", "medium.en",
		"large-v3", "large-v3-turbo", "large-v3-q5_0", "large-v3-turbo-q5_0", "large-v3-turbo-q8_0"} {
		if !seenName[n] {
			t.Errorf("catalog lacks %s", n)
		}
	}
	for _, n := range DefaultNames {
		if !seenName[n] {
			t.Errorf("default %s is not in the catalog", n)
		}
	}
	// Spot checks against the published records (Hugging Face LFS metadata).
	e, ok := Lookup("ggml-large-v3-turbo.bin")
	if !ok || e.Size != 1624555275 || e.SHA256 != "1fc70f774d38eb169993ac391eea357ef47c88757ef72ee5943879b7e8e2bc69" {
		t.Errorf("large-v3-turbo = %+v", e)
	}
	if got := e.URL(""); got != "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-large-v3-turbo.bin" {
		t.Errorf("URL = %s", got)
	}
	if got := e.URL("http://127.0.0.1:9/m/"); got != "http://127.0.0.1:9/m/ggml-large-v3-turbo.bin" {
		t.Errorf("URL with base = %s", got)
	}
	if _, ok := Lookup("large-v3-q8_0"); ok {
		t.Error("large-v3-q8_0 is not published upstream")
	}
}

func TestHumanSize(t *testing.T) {
	cases := map[int64]string{1624555275: "1.6 GB", 3095033483: "3.1 GB", 77691713: "77.7 MB", 1500: "1.5 kB", 12: "12 B"}
	for n, want := range cases {
		if got := HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %s, want %s", n, got, want)
		}
	}
}
