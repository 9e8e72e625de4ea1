package summarize

import (
	"slices"
	"testing"
)

func TestStem(t *testing.T) {
	groups := [][]string{
		{"plan", "plans", "planned", "planning"},
		{"decide", "decided", "decides", "deciding"},
		{"study", "studies", "studied", "studying"},
		{"run", "runs", "running"},
		{"call", "calls", "called", "calling"},
		{"box", "boxes"},
		{"class", "classes"},
		{"agree", "agreed", "agrees"},
	}
	for _, g := range groups {
		for _, w := range g[1:] {
			if stem(w) != stem(g[0]) {
				t.Errorf("stem(%q) = %q, stem(%q) = %q", w, stem(w), g[0], stem(g[0]))
			}
		}
	}
	for _, w := range []string{"bus", "gas", "this", "analysis", "status", "café", "x"} {
		if s := stem(w); s == "" {
			t.Errorf("stem(%q) empty", w)
		}
	}
	if stem("news") == stem("new") && stem("bus") == stem("bu") {
		t.Error("over-folding")
	}
}

func TestTokens(t *testing.T) {
	var got []string
	for _, tk := range tokens("Okay, so the Kiwis' nests — we'll check NASA's 3 reports in Zürich, don't we?") {
		got = append(got, tk.surface+"/"+tk.stem)
	}
	want := []string{"Kiwis/kiwi", "nests/nest", "check/check", "NASA/nasa", "reports/report", "Zürich/zürich"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	// A capital due only to the sentence start is lowered.
	if tk := tokens("Tomatoes grow"); tk[0].surface != "tomatoes" {
		t.Errorf("surface %q", tk[0].surface)
	}
}
