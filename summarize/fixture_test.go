package summarize

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/verbatimhq/verbatim/sidecar"
)

// loadTopics reads testdata/topics.tsv.gz: topic name → its sentences, in file order.
func loadTopics(t testing.TB) map[string][]string {
	t.Helper()
	f, err := os.Open("testdata/topics.tsv.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	topics := map[string][]string{}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		topic, sentence, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		topics[topic] = append(topics[topic], sentence)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return topics
}

// fixtureSHA256 is the SHA-256 of the content of testdata/topics.tsv.gz (see its README).
const fixtureSHA256 = "df131e69af4dffd5bc97a137eaa3d61923dd32a2fe19d8702a263b3b6c601e72"

func TestFixture(t *testing.T) {
	f, err := os.Open("testdata/topics.tsv.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != fixtureSHA256 {
		t.Errorf("testdata/topics.tsv.gz content has SHA-256 %x, want %s (README.md)", sum, fixtureSHA256)
	}
	topics := loadTopics(t)
	if len(topics) != 14 || len(topics["noun.animal"]) != 1800 || len(topics["noun.food"]) != 320 {
		t.Errorf("%d topics", len(topics))
	}
	for name, ss := range topics {
		for _, s := range ss {
			if n := len(strings.Fields(s)); n < 6 || n > 30 || !strings.HasSuffix(s, ".") || strings.Count(s, ".") != 1 {
				t.Errorf("%s: %q", name, s)
			}
		}
	}
	if lines := bytes.Count(data, []byte("\n")); lines != 5960 {
		t.Errorf("%d lines", lines)
	}
}

// rng is splitmix64: a fixed pseudo-random sequence from a seed, the same on every platform
// and Go version.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float is uniform in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func (r *rng) shuffle(s []string) {
	for i := len(s) - 1; i > 0; i-- {
		j := int(r.next() % uint64(i+1))
		s[i], s[j] = s[j], s[i]
	}
}

// block is a stretch of the synthetic transcript on one topic.
type block struct {
	topic   string
	minutes float64
}

// synth builds segments (one sentence each, no word times) from blocks: each block's topic
// sentences in a seeded shuffled order until the block's length is filled, 0.33 s a word
// (±10%) and pauses of 0.2–0.8 s between sentences, the same at topic changes as inside
// topics. It returns the segments and the index of each block's first sentence.
func synth(t testing.TB, topics map[string][]string, blocks []block, seed uint64) ([]sidecar.Segment, []int) {
	t.Helper()
	r := rng(seed)
	var segs []sidecar.Segment
	var firsts []int
	var at time.Duration
	used := map[string]int{}
	for _, b := range blocks {
		pool := append([]string(nil), topics[b.topic]...)
		if len(pool) == 0 {
			t.Fatalf("no topic %s", b.topic)
		}
		rr := rng(seed ^ hash(b.topic))
		rr.shuffle(pool)
		firsts = append(firsts, len(segs))
		end := at + time.Duration(b.minutes*float64(time.Minute))
		for at < end {
			k := used[b.topic]
			if k >= len(pool) {
				t.Fatalf("topic %s: out of sentences", b.topic)
			}
			used[b.topic]++
			text := pool[k]
			d := time.Duration(float64(len(strings.Fields(text))) * 0.33 * (0.9 + 0.2*r.float()) * float64(time.Second))
			segs = append(segs, sidecar.Segment{Start: at, End: at + d, Text: " " + text})
			at += d + time.Duration((0.2+0.6*r.float())*float64(time.Second))
		}
	}
	return segs, firsts
}

func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

// score compares chapter starts with true boundaries (first sentences of blocks, the first
// block's excluded): hit counts the true boundaries with a chapter start within tol sentences,
// extra the chapter starts (the first excluded) within tol of none.
func score(chapters []Chapter, truth []int, tol int) (hit, extra int, misses []int) {
	near := func(a, b int) bool { return a-b <= tol && b-a <= tol }
	for _, b := range truth[1:] {
		found := false
		for _, c := range chapters[1:] {
			if near(c.First, b) {
				found = true
			}
		}
		if found {
			hit++
		} else {
			misses = append(misses, b)
		}
	}
	for _, c := range chapters[1:] {
		found := false
		for _, b := range truth[1:] {
			if near(c.First, b) {
				found = true
			}
		}
		if !found {
			extra++
		}
	}
	return hit, extra, misses
}
