package summarize

import (
	"math"
	"slices"
	"strings"
	"unicode"
)

// token is one content word of a sentence: its stem (what is compared) and its surface form
// (what a title shows).
type token struct {
	stem, surface string
	id            int // the term's id in a model
}

// tokens lists the content words of a sentence: words (letters, digits and inner apostrophes;
// a hyphen separates) lowercased, without stopwords, numbers and one-letter words, stemmed.
// The surface form keeps the word's case, except that a capital only due to the sentence start
// is lowered.
func tokens(text string) []token {
	var out []token
	first := true
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		raw := strings.Trim(strings.ReplaceAll(text[start:end], "’", "'"), "'")
		start = -1
		isFirst := first
		first = false
		if raw == "" {
			return
		}
		lower := strings.ToLower(raw)
		if strings.HasSuffix(lower, "'s") {
			lower, raw = lower[:len(lower)-2], raw[:len(raw)-2]
		}
		if stopwords[lower] {
			return
		}
		lower = strings.ReplaceAll(lower, "'", "")
		raw = strings.ReplaceAll(raw, "'", "")
		if len([]rune(lower)) < 2 || stopwords[lower] || numeric(lower) {
			return
		}
		if isFirst && capitalizedOnly(raw) {
			raw = lower
		}
		out = append(out, token{stem: stem(lower), surface: raw})
	}
	for i, r := range text {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || ((r == '\'' || r == '’') && start >= 0) {
			if start < 0 {
				start = i
			}
			continue
		}
		flush(i)
	}
	flush(len(text))
	return out
}

// capitalizedOnly reports whether s is a capital followed by lower-case letters only ("Kiwi",
// not "NASA" or "iPhone").
func capitalizedOnly(s string) bool {
	for i, r := range s {
		if (i == 0) != unicode.IsUpper(r) {
			return false
		}
	}
	return true
}

func numeric(s string) bool {
	for _, r := range s {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// stem folds common English inflections: plurals (-s, -es, -ies), -ed and -ing, a doubled final
// consonant and a final silent e, so that "plans", "planned" and "planning" meet at "plan" and
// "decide", "decided" and "decides" at "decid". It is light on purpose: a wrong fold costs
// less than a missed one here.
func stem(w string) string {
	n := len(w)
	if n <= 3 || !isASCII(w) {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && n > 4:
		w = w[:n-3] + "y"
	case strings.HasSuffix(w, "sses"):
		w = w[:n-2]
	case strings.HasSuffix(w, "ss") || strings.HasSuffix(w, "us") || strings.HasSuffix(w, "sis") ||
		strings.HasSuffix(w, "xis"): // "class", "status", "analysis", "axis"
	case strings.HasSuffix(w, "s"):
		w = w[:n-1]
	}
	n = len(w)
	switch {
	case strings.HasSuffix(w, "ied") && n > 4:
		w = w[:n-3] + "y"
	case strings.HasSuffix(w, "eed") && n > 4:
		w = w[:n-1]
	case strings.HasSuffix(w, "ed") && n > 4 && hasVowel(w[:n-2]):
		w = undouble(w[:n-2])
	case strings.HasSuffix(w, "ing") && n > 5 && hasVowel(w[:n-3]):
		w = undouble(w[:n-3])
	}
	if n = len(w); n > 3 && w[n-1] == 'e' {
		w = w[:n-1]
	}
	return w
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hasVowel(s string) bool { return strings.ContainsAny(s, "aeiouy") }

// undouble drops one of a doubled final consonant ("plann" → "plan"), except l, s and z
// ("call", "miss", "buzz").
func undouble(s string) string {
	n := len(s)
	if n >= 3 && s[n-1] == s[n-2] && !strings.ContainsRune("aeioulsz", rune(s[n-1])) {
		return s[:n-1]
	}
	return s
}

// entry is one term of a sparse vector.
type entry struct {
	id int
	w  float64
}

// vector is a sparse term vector, its entries in increasing id.
type vector []entry

func dot(a, b vector) float64 {
	s := 0.0
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i].id < b[j].id:
			i++
		case a[i].id > b[j].id:
			j++
		default:
			s += a[i].w * b[j].w
			i++
			j++
		}
	}
	return s
}

// model is the transcript as term vectors.
type model struct {
	n      int
	terms  []string  // stems by id, ids in order of first appearance
	df     []int     // sentences holding each term
	idf    []float64 // ln(n/df)
	texts  []string
	toks   [][]token // each sentence's content words
	ids    [][]int   // each sentence's distinct term ids, increasing
	vecs   []vector  // each sentence's TF-IDF vector, unit length (or empty)
	words  []int     // each sentence's word count
	starts []float64 // each sentence's start, in seconds from the first sentence's
	ends   []float64
}

func newModel(sents []Sentence) *model {
	m := &model{n: len(sents)}
	index := map[string]int{}
	counts := make([]map[int]int, len(sents))
	for i, s := range sents {
		ts := tokens(s.Text)
		m.texts = append(m.texts, s.Text)
		m.toks = append(m.toks, ts)
		m.words = append(m.words, len(strings.Fields(s.Text)))
		c := map[int]int{}
		for k, t := range ts {
			id, ok := index[t.stem]
			if !ok {
				id = len(m.terms)
				index[t.stem] = id
				m.terms = append(m.terms, t.stem)
				m.df = append(m.df, 0)
			}
			ts[k].id = id
			if c[id] == 0 {
				m.df[id]++
			}
			c[id]++
		}
		counts[i] = c
	}
	m.idf = make([]float64, len(m.terms))
	for id, d := range m.df {
		m.idf[id] = math.Log(float64(m.n) / float64(d))
	}
	for _, c := range counts {
		ids := make([]int, 0, len(c))
		for id := range c {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		m.ids = append(m.ids, ids)
		v := make(vector, 0, len(ids))
		norm := 0.0
		for _, id := range ids {
			w := (1 + math.Log(float64(c[id]))) * m.idf[id]
			if w > 0 {
				v = append(v, entry{id, w})
				norm += w * w
			}
		}
		norm = math.Sqrt(norm)
		for k := range v {
			v[k].w /= norm
		}
		m.vecs = append(m.vecs, v)
	}
	t0 := sents[0].Start
	for _, s := range sents {
		m.starts = append(m.starts, (s.Start - t0).Seconds())
		m.ends = append(m.ends, (s.End - t0).Seconds())
	}
	return m
}

// dense is a scratch vector for sums of sparse vectors.
type dense struct {
	w    []float64
	used []int
}

func newDense(n int) *dense { return &dense{w: make([]float64, n)} }

func (d *dense) add(v vector) {
	for _, e := range v {
		if d.w[e.id] == 0 { // weights are positive: a sum is 0 only where nothing was added
			d.used = append(d.used, e.id)
		}
		d.w[e.id] += e.w
	}
}

func (d *dense) reset() {
	for _, id := range d.used {
		d.w[id] = 0
	}
	d.used = d.used[:0]
}

// sparse returns the sum as a sparse vector, ids increasing.
func (d *dense) sparse() vector {
	ids := slices.Clone(d.used)
	slices.Sort(ids)
	v := make(vector, len(ids))
	for k, id := range ids {
		v[k] = entry{id, d.w[id]}
	}
	return v
}

func norm(v vector) float64 { return math.Sqrt(dot(v, v)) }

// sum adds the vectors of sentences [a, b) into d (reset first) and returns it as sparse.
func (m *model) sum(d *dense, a, b int) vector {
	d.reset()
	for i := a; i < b; i++ {
		d.add(m.vecs[i])
	}
	return d.sparse()
}

func cosine(a, b vector) float64 {
	na, nb := norm(a), norm(b)
	if na == 0 || nb == 0 {
		return 0
	}
	return dot(a, b) / (na * nb)
}

// stopwords are English function words, pronouns, auxiliaries, common adverbs and the fillers
// and discourse words of speech: words that say nothing about a topic.
var stopwords = setOf(strings.Fields(`
a about above across actually after afterwards again against ago ah ahead all almost alone along
already alright also although always am among amongst an and another any anybody anyhow anyone
anything anyway anyways anywhere are aren't around as aside ask asked asking at away aw back
basically be became because become becomes becoming been before beforehand behind being below
beside besides best better between beyond both bring brought but by bye ca came can can't cannot
cause certain certainly come comes coming could couldn't course currently definitely did didn't
different do does doesn't doing don't done down during each eh either else elsewhere em end enough
er especially etc even ever every everybody everyone everything everywhere exactly example except
far few fine first five for former formerly four from front further furthermore gave get gets
getting give given gives giving go goes going gone gonna good got gotta great guess guy guys had
hadn't half happen happened has hasn't have haven't having he he'd he'll he's hello hence her here
here's hereby herein hers herself hey hi him himself his hm hmm how how's however huh i i'd i'll
i'm i've ie if im important in indeed instead into is isn't it it'd it'll it's its itself just
keep kind kinda know knew known last later least less let let's like likely little look looked
looking looks lot lots made mainly make makes making many may maybe me mean means meant meanwhile
might mine minus mm more moreover most mostly mr mrs ms much must mustn't my myself namely near
nearly need needed needs neither never nevertheless new next nine no nobody none noone nor not
nothing now nowhere of off often oh ok okay old on once one ones only onto or other others
otherwise ought our ours ourselves out over overall own part particular particularly per perhaps
please plus possible pretty probably put quite rather really right said same saw say saying says
second see seeing seem seemed seeming seems seen self selves several shall she she'd she'll she's
should shouldn't show showed shown shows similar simply since six so some somebody somehow someone
something sometime sometimes somewhat somewhere soon sort sorry still stuff such sure take taken
takes taking talk talked talking tell telling tells ten than thank thanks that that's thats the
their theirs them themselves then thence there there's thereafter thereby therefore therein
thereof these they they'd they'll they're they've thing things think thinking thinks third this
those though thought three through throughout thru thus til till to today together told too took
toward towards tried tries truly try trying twice two uh uh-huh um un under unless unlike until
unto up upon us use used uses using usually various very via want wanted wants was wasn't way
ways we we'd we'll we're we've well went were weren't what what's whatever when whence whenever
where where's whereas whereby wherein whether which while who who's whoever whole whom whose why
will with within without won't wonder would wouldn't wow ya yeah yep yes yet you
you'd you'll you're you've your yours yourself yourselves
`)...)
