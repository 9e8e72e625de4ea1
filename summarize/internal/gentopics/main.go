// Command gentopics writes the test fixture testdata/topics.tsv.gz of package summarize: English
// sentences grouped by topic, made from the glosses of WordNet 3.0 nouns grouped by their
// lexicographer file (noun.animal, noun.food, ...). See testdata/README.md for provenance.
//
// Usage (from the repository root):
//
//	dpkg -x .debs/text/wordnet-base_1%3a3.0-37_all.deb /tmp/wn
//	go run ./summarize/internal/gentopics -data /tmp/wn/usr/share/wordnet/data.noun -o summarize/testdata/topics.tsv.gz
//
// The output is deterministic: synsets are ordered by the SHA-256 of their offset, and each
// topic takes the first ones whose gloss makes a usable sentence.
package main

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"unicode"
)

// topics are the lexicographer files used (numbers from WordNet's lexnames) and how many
// sentences each contributes. noun.animal has more: enough for two hours on one topic.
var topics = []struct {
	num  string
	name string
	n    int
}{
	{"04", "noun.act", 320},
	{"05", "noun.animal", 1800},
	{"06", "noun.artifact", 320},
	{"08", "noun.body", 320},
	{"09", "noun.cognition", 320},
	{"10", "noun.communication", 320},
	{"11", "noun.event", 320},
	{"13", "noun.food", 320},
	{"15", "noun.location", 320},
	{"18", "noun.person", 320},
	{"20", "noun.plant", 320},
	{"26", "noun.state", 320},
	{"27", "noun.substance", 320},
	{"28", "noun.time", 320},
}

type synset struct {
	key      [32]byte
	sentence string
}

func main() {
	data := flag.String("data", "", "WordNet 3.0 data.noun")
	out := flag.String("o", "", "output .tsv.gz")
	flag.Parse()
	if *data == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(*data)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	byTopic := map[string][]synset{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "  ") { // the license header
			continue
		}
		fields := strings.Fields(line)
		bar := strings.Index(line, " | ")
		if len(fields) < 5 || bar < 0 {
			continue
		}
		s, ok := sentence(fields[4], line[bar+3:])
		if !ok {
			continue
		}
		byTopic[fields[1]] = append(byTopic[fields[1]], synset{key: sha256.Sum256([]byte(fields[0])), sentence: s})
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	var b strings.Builder
	for _, t := range topics {
		ss := byTopic[t.num]
		slices.SortFunc(ss, func(a, b synset) int { return strings.Compare(string(a.key[:]), string(b.key[:])) })
		seen := map[string]bool{}
		n := 0
		for _, s := range ss {
			if n == t.n {
				break
			}
			if seen[s.sentence] {
				continue
			}
			seen[s.sentence] = true
			fmt.Fprintf(&b, "%s\t%s\n", t.name, s.sentence)
			n++
		}
		if n < t.n {
			log.Fatalf("%s: only %d sentences", t.name, n)
		}
	}
	o, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(o, gzip.BestCompression) // no name or time in the header
	if _, err := zw.Write([]byte(b.String())); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := o.Close(); err != nil {
		log.Fatal(err)
	}
}

// determiners may begin a gloss as it is; any other first word gets "a" or "an" before it.
var determiners = map[string]bool{
	"a": true, "an": true, "the": true, "any": true, "one": true, "some": true, "someone": true,
	"something": true, "each": true, "every": true, "either": true, "two": true, "three": true,
	"several": true, "all": true, "anything": true, "somebody": true, "his": true, "her": true,
	"its": true, "their": true, "many": true, "much": true, "no": true,
}

// sentence makes "Headword is a gloss." from a synset's first word and the first clause of its
// gloss, or reports false when that is not a plain sentence of 6 to 30 words.
func sentence(word, gloss string) (string, bool) {
	head := strings.ReplaceAll(word, "_", " ")
	if i := strings.IndexByte(head, '('); i >= 0 { // adjective markers such as (a)
		head = head[:i]
	}
	if head == "" || !unicode.IsLower(rune(head[0])) {
		return "", false // proper names and taxonomic names
	}
	clause := gloss
	if i := strings.IndexAny(clause, ";\":"); i >= 0 { // first clause, no examples
		clause = clause[:i]
	}
	clause = dropParens(clause)
	clause = strings.Join(strings.Fields(clause), " ")
	clause = strings.TrimRight(clause, " ,")
	for _, r := range head + " " + clause {
		if !(r < 128 && (unicode.IsLetter(r) || r == ' ' || r == ',' || r == '-' || r == '\'')) {
			return "", false // digits, dots, other punctuation: keep the sentences plain
		}
	}
	if clause == "" {
		return "", false
	}
	first := strings.ToLower(strings.Fields(clause)[0])
	if !determiners[first] {
		art := "a "
		if strings.ContainsRune("aeiou", rune(first[0])) {
			art = "an "
		}
		clause = art + clause
	}
	s := strings.ToUpper(head[:1]) + head[1:] + " is " + clause + "."
	if n := len(strings.Fields(s)); n < 6 || n > 30 {
		return "", false
	}
	return s, true
}

func dropParens(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}
