package tokenizer

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// ggmlHeaders is the folder of whisper.cpp's header-only ggml files (its README.md).
const ggmlHeaders = "../weights/testdata"

func mustNew(tb testing.TB, nVocab int) *Tokenizer {
	tb.Helper()
	t, err := New(nVocab)
	if err != nil {
		tb.Fatalf("New(%d): %v", nVocab, err)
	}
	return t
}

// readJSONLines reads one JSON value per line into a slice of T.
func readJSONLines[T any](tb testing.TB, path string) []T {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			tb.Fatalf("%s line %d: %v", path, len(out)+1, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func texts(tb testing.TB) []string {
	tb.Helper()
	s := readJSONLines[string](tb, filepath.Join("testdata", "texts.txt"))
	if len(s) < 2000 {
		tb.Fatalf("texts.txt has %d lines, want >= 2000", len(s))
	}
	return s
}

func TestSpecialIDs(t *testing.T) {
	type ids struct {
		EOT, SOT, En, Translate, Transcribe, SOTLM, SOTPrev, NoSpeech, NoTimestamps, TimestampBegin int
		Multilingual                                                                                bool
		NLang                                                                                       int
	}
	cases := []struct {
		nVocab int
		want   ids
	}{
		{51864, ids{50256, 50257, -1, 50357, 50358, 50359, 50360, 50361, 50362, 50363, false, 0}},
		{51865, ids{50257, 50258, 50259, 50358, 50359, 50360, 50361, 50362, 50363, 50364, true, 99}},
		{51866, ids{50257, 50258, 50259, 50359, 50360, 50361, 50362, 50363, 50364, 50365, true, 100}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.nVocab), func(t *testing.T) {
			tk := mustNew(t, c.nVocab)
			en, ok := tk.LanguageToken("en")
			if !ok {
				en = -1
			}
			got := ids{tk.EOT, tk.SOT, en, tk.Translate, tk.Transcribe, tk.SOTLM, tk.SOTPrev, tk.NoSpeech,
				tk.NoTimestamps, tk.TimestampBegin, tk.Multilingual, len(tk.Languages())}
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if last := tk.TimestampBegin + NumTimestamps - 1; last != c.nVocab-1 {
				t.Errorf("last timestamp %d, want %d", last, c.nVocab-1)
			}
			names := map[int]string{
				tk.EOT: "<|endoftext|>", tk.SOT: "<|startoftranscript|>", tk.SOT + 1: "<|en|>",
				tk.SOT + 2: "<|zh|>", tk.Translate - 1: "<|su|>", tk.Translate: "<|translate|>",
				tk.Transcribe: "<|transcribe|>", tk.SOTLM: "<|startoflm|>", tk.SOTPrev: "<|startofprev|>",
				tk.NoSpeech: "<|nospeech|>", tk.NoTimestamps: "<|notimestamps|>",
				tk.TimestampBegin: "<|0.00|>", tk.TimestampBegin + 54: "<|1.08|>",
				tk.NVocab - 1: "<|30.00|>", tk.EOT - 1: "", tk.NVocab: "", -1: "",
			}
			if c.nVocab == 51866 {
				names[tk.Translate-1] = "<|yue|>"
			}
			for id, want := range names {
				if got := tk.SpecialName(id); got != want {
					t.Errorf("SpecialName(%d) = %q, want %q", id, got, want)
				}
				if want != "" && string(tk.TokenBytes(id)) != want {
					t.Errorf("TokenBytes(%d) = %q, want %q", id, tk.TokenBytes(id), want)
				}
			}
			for id := tk.EOT; id < tk.NVocab; id++ {
				if !tk.IsSpecial(id) || tk.SpecialName(id) == "" {
					t.Fatalf("id %d: not special or unnamed", id)
				}
			}
		})
	}
	if _, err := New(50000); !errors.Is(err, ErrVocabSize) {
		t.Errorf("New(50000) error %v, want ErrVocabSize", err)
	}
}

// TestEncodeKnown checks encodings looked up by hand in the .tiktoken files (each id is the rank
// of the piece's bytes) and with tools/reference/tokenizer_bpe_ref.py.
func TestEncodeKnown(t *testing.T) {
	cases := []struct {
		nVocab int
		text   string
		want   []int
	}{
		{51865, "Hello world", []int{15947, 1002}},
		{51866, "Hello world", []int{15947, 1002}},
		{51864, "Hello world", []int{15496, 995}},
		{51864, " the", []int{262}},
		{51864, "don't", []int{9099, 470}},
		{51865, "", []int{}},
		{51865, " -", []int{359}},
		{51865, " '", []int{922}},
		{51864, " -", []int{532}},
		{51864, " '", []int{705}},
		{51865, " the", []int{264}},
		{51865, "don't", []int{13966, 380}},
		{51865, "  ", []int{220, 220}}, // no multi-space tokens in the multilingual ranks
		{51864, "\n\n", []int{628}},
		{51864, "  a", []int{220, 257}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d/%q", c.nVocab, c.text), func(t *testing.T) {
			tk := mustNew(t, c.nVocab)
			if got := tk.Encode(c.text); !slices.Equal(got, c.want) {
				t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
			}
		})
	}
}

func TestPieces(t *testing.T) {
	cases := []struct {
		text string
		want []string
	}{
		{"Hello world", []string{"Hello", " world"}},
		{"  a", []string{" ", " a"}},
		{"a  \n", []string{"a", "  \n"}},
		{"a \t b", []string{"a", " \t", " b"}},
		{"\ta", []string{"\t", "a"}},
		{"\t\ta", []string{"\t", "\t", "a"}}, // only U+0020 joins a following word
		{"don't", []string{"don", "'t"}},
		{"DON'T", []string{"DON", "'", "T"}},
		{"we'd've", []string{"we", "'d", "'ve"}},
		{"?'s", []string{"?'", "s"}},
		{" 's", []string{" '", "s"}},
		{"'sa", []string{"'s", "a"}},
		{"'ll'", []string{"'ll", "'"}},
		{"abc123def", []string{"abc", "123", "def"}},
		{" 123 ½", []string{" 123", " ½"}},
		{"x\u3000\u3000y", []string{"x", "\u3000", "\u3000", "y"}},
		{"x  \u3000y", []string{"x", "  ", "\u3000", "y"}},
		{"x   y", []string{"x", "  ", " y"}},
		{"x\u00a0y", []string{"x", "\u00a0", "y"}},
		{"a\x1fb", []string{"a", "\x1f", "b"}},
		{"a\xffb", []string{"a", "\xff", "b"}},
		{" \xff\xfe!", []string{" \xff\xfe!"}},
		{"你好，世界！", []string{"你好", "，", "世界", "！"}},
		{"🤷‍♂️ ok", []string{"🤷\u200d♂\ufe0f", " ok"}},
		{"end   ", []string{"end", "   "}},
		{"x\n\n", []string{"x", "\n\n"}},
		{"x \n y", []string{"x", " \n", " y"}},
	}
	for _, c := range cases {
		var got []string
		for i := 0; i < len(c.text); {
			j := nextPiece(c.text, i)
			got = append(got, c.text[i:j])
			i = j
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("pieces(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

// compareGoldens compares Encode with golden ids line by line, reporting the first difference.
func compareGoldens(t *testing.T, tk *Tokenizer, lines []string, path string) {
	t.Helper()
	want := readJSONLines[[]int](t, path)
	if len(want) != len(lines) {
		t.Fatalf("%s has %d lines, texts.txt %d", path, len(want), len(lines))
	}
	bad := 0
	for i, text := range lines {
		got := tk.Encode(text)
		if slices.Equal(got, want[i]) {
			continue
		}
		if bad++; bad == 1 {
			pos := 0
			for pos < len(got) && pos < len(want[i]) && got[pos] == want[i][pos] {
				pos++
			}
			t.Errorf("%s: first difference at line %d (%q), token %d:\n got  %v\n want %v",
				path, i+1, text, pos, got[pos:min(len(got), pos+8)], want[i][pos:min(len(want[i]), pos+8)])
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d lines differ", path, bad, len(lines))
	}
}

// TestGoldenTiktoken compares with tiktoken's ids (tools/reference/tokenizer_goldens.py).
func TestGoldenTiktoken(t *testing.T) {
	lines := texts(t)
	for _, c := range []struct {
		nVocab int
		file   string
	}{{51865, "tokens_multilingual.jsonl"}, {51864, "tokens_gpt2.jsonl"}} {
		t.Run(c.file, func(t *testing.T) {
			compareGoldens(t, mustNew(t, c.nVocab), lines, filepath.Join("testdata", c.file))
		})
	}
	tk := mustNew(t, 51865)
	want := readJSONLines[string](t, filepath.Join("testdata", "decoded_multilingual.jsonl"))
	if len(want) != len(lines) {
		t.Fatalf("decoded_multilingual.jsonl: %d lines, texts.txt %d", len(want), len(lines))
	}
	for i, text := range lines {
		if got := tk.Decode(tk.Encode(text)); got != want[i] {
			t.Fatalf("line %d: Decode = %q, tiktoken %q", i+1, got, want[i])
		}
	}
	compareSpecials(t, filepath.Join("testdata", "specials.json"))
}

func compareSpecials(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]json.RawMessage
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, n := range []int{51864, 51865, 51866} {
		var want struct {
			EOT, SOT, Translate, Transcribe, SOTLM, SOTPrev, NoSpeech, NoTimestamps, TimestampBegin, Last int
			NonSpeech                                                                                     []int
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(info[fmt.Sprint(n)], &raw); err != nil {
			t.Fatalf("%s %d: %v", path, n, err)
		}
		for k, p := range map[string]any{"eot": &want.EOT, "sot": &want.SOT, "translate": &want.Translate,
			"transcribe": &want.Transcribe, "sot_lm": &want.SOTLM, "sot_prev": &want.SOTPrev,
			"no_speech": &want.NoSpeech, "no_timestamps": &want.NoTimestamps,
			"timestamp_begin": &want.TimestampBegin, "last": &want.Last, "non_speech": &want.NonSpeech} {
			if err := json.Unmarshal(raw[k], p); err != nil {
				t.Fatalf("%s %d %s: %v", path, n, k, err)
			}
		}
		tk := mustNew(t, n)
		got := []int{tk.EOT, tk.SOT, tk.Translate, tk.Transcribe, tk.SOTLM, tk.SOTPrev, tk.NoSpeech, tk.NoTimestamps, tk.TimestampBegin, tk.NVocab - 1}
		w := []int{want.EOT, want.SOT, want.Translate, want.Transcribe, want.SOTLM, want.SOTPrev, want.NoSpeech, want.NoTimestamps, want.TimestampBegin, want.Last}
		if !slices.Equal(got, w) {
			t.Errorf("%d: special ids %v, tiktoken %v", n, got, w)
		}
		if got := tk.NonSpeechTokens(); !slices.Equal(got, want.NonSpeech) {
			t.Errorf("%d: NonSpeechTokens %v, tiktoken %v", n, got, want.NonSpeech)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	lines := texts(t)
	for _, n := range []int{51864, 51865, 51866} {
		tk := mustNew(t, n)
		for i, text := range lines {
			ids := tk.Encode(text)
			if got := tk.Decode(ids); got != text {
				t.Fatalf("%d line %d: Decode(Encode(%q)) = %q", n, i+1, text, got)
			}
		}
	}
}

// TestNonSpeechTokens checks the text tokens of openai/whisper's non_speech_tokens as the
// reference prints them (also the text part of Hugging Face's suppress_tokens).
func TestNonSpeechTokens(t *testing.T) {
	multi := []int{1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92,
		93, 359, 503, 522, 542, 873, 893, 902, 918, 922, 931, 1350, 1853, 1982, 2460, 2627, 3246, 3253,
		3268, 3536, 3846, 3961, 4183, 4667, 6585, 6647, 7273, 9061, 9383, 10428, 10929, 11938, 12033,
		12331, 12562, 13793, 14157, 14635, 15265, 15618, 16553, 16604, 18362, 18956, 20075, 21675,
		22520, 26130, 26161, 26435, 28279, 29464, 31650, 32302, 32470, 36865, 42863, 47425, 49870, 50254}
	english := []int{1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92,
		93, 357, 366, 438, 532, 685, 705, 796, 930, 1058, 1220, 1267, 1279, 1303, 1343, 1377, 1391, 1635,
		1782, 1875, 2162, 2361, 2488, 3467, 4008, 4211, 4600, 4808, 5299, 5855, 6329, 7203, 9609, 9959,
		10563, 10786, 11420, 11709, 11907, 13163, 13697, 13700, 14808, 15306, 16410, 16791, 17992, 19203,
		19510, 20724, 22305, 22935, 27007, 30109, 30420, 33409, 34949, 40283, 40493, 40549, 47282, 49146}
	cases := []struct {
		nVocab int
		want   []int
	}{{51864, english}, {51865, multi}, {51866, multi}}
	for _, c := range cases {
		tk := mustNew(t, c.nVocab)
		got := tk.NonSpeechTokens()
		if !slices.Equal(got, c.want) {
			t.Errorf("%d: NonSpeechTokens() =\n%v\nwant\n%v", c.nVocab, got, c.want)
		}
		got[0] = -1 // a copy
		if tk.NonSpeechTokens()[0] != c.want[0] {
			t.Errorf("%d: NonSpeechTokens shares its slice", c.nVocab)
		}
	}
}

// readGGMLVocab parses a whisper.cpp ggml header just far enough to reach its vocabulary.
func readGGMLVocab(t *testing.T, path string) (nVocab int, vocab [][]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i32 := func() int {
		if len(b) < 4 {
			t.Fatalf("%s: truncated", path)
		}
		v := int(int32(binary.LittleEndian.Uint32(b)))
		b = b[4:]
		return v
	}
	if magic := uint32(i32()); magic != 0x67676d6c {
		t.Fatalf("%s: magic %#x", path, magic)
	}
	nVocab = i32()
	for range 10 {
		i32()
	}
	nMel, nFFT := i32(), i32()
	b = b[4*nMel*nFFT:]
	n := i32()
	for range n {
		l := i32()
		vocab = append(vocab, b[:l])
		b = b[l:]
	}
	return nVocab, vocab
}

func TestGGMLVocab(t *testing.T) {
	lines := texts(t)
	for _, c := range []struct {
		file   string
		nVocab int
	}{{"ggml-header-tiny.bin", 51865}, {"ggml-header-tiny.en.bin", 51864}, {"ggml-header-large-v2.bin", 51865}} {
		t.Run(c.file, func(t *testing.T) {
			nVocab, vocab := readGGMLVocab(t, filepath.Join(ggmlHeaders, c.file))
			if nVocab != c.nVocab {
				t.Fatalf("n_vocab %d, want %d", nVocab, c.nVocab)
			}
			tk := mustNew(t, nVocab)
			want := tk.Vocab()
			if len(want) != tk.EOT {
				t.Fatalf("Vocab() has %d tokens, EOT is %d", len(want), tk.EOT)
			}
			// The fixtures store each token as its text with U+FFFD replacement: equal bytes
			// for every token that is valid UTF-8, the replaced text for the others.
			lossy := 0
			for id, w := range want {
				if utf8.Valid(w) {
					if string(vocab[id]) != string(w) {
						t.Fatalf("token %d: ggml %q, tiktoken %q", id, vocab[id], w)
					}
					continue
				}
				lossy++
				if r, _ := appendUTF8(nil, w, true); string(vocab[id]) != string(r) {
					t.Fatalf("token %d: ggml %q, tiktoken %q replaced %q", id, vocab[id], w, r)
				}
			}
			t.Logf("%d of %d tokens equal; %d stored with U+FFFD replacement", len(want)-lossy, len(want), lossy)
			fv, err := fromVocab(vocab, nVocab)
			if err != nil {
				t.Fatal(err)
			}
			if fv.EOT != tk.EOT || fv.NoTimestamps != tk.NoTimestamps || fv.TimestampBegin != tk.TimestampBegin || fv.Multilingual != tk.Multilingual {
				t.Fatalf("FromVocab layout differs: %+v vs %+v", fv, tk)
			}
			for i, text := range lines[:500] {
				if a, b := fv.Encode(text), tk.Encode(text); !slices.Equal(a, b) {
					t.Fatalf("line %d: FromVocab encodes %v, New %v", i+1, a, b)
				}
			}
		})
	}
}

func TestFromRanksErrors(t *testing.T) {
	var full strings.Builder
	for c := range 256 {
		fmt.Fprintf(&full, "%s %d\n", b64([]byte{byte(c)}), c)
	}
	cases := []struct {
		name, in string
		nVocab   int
		ok       bool
	}{
		{"bytes only", full.String(), 256 + 1509, true},
		{"bytes with 3 languages", full.String(), 256 + 1509 + 3, true},
		{"too few languages", full.String(), 256 + 1508, false},
		{"too many languages", full.String(), 256 + 1509 + 101, false},
		{"missing byte", "QQ== 0\n", 1 + 1509, false},
		{"bad base64", full.String() + "!!! 256\n", 257 + 1509, false},
		{"bad rank", full.String() + "QUI= x\n", 257 + 1509, false},
		{"repeated rank", full.String() + "QUI= 3\n", 257 + 1509, false},
		{"rank gap", full.String() + "QUI= 300\n", 257 + 1509, false},
		{"three fields", "QQ== 0 1\n", 1 + 1509, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk, err := fromRanks(strings.NewReader(c.in), c.nVocab)
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if c.ok && tk.Decode(tk.Encode("héllo")) != "héllo" {
				t.Errorf("round trip failed")
			}
		})
	}
}

func b64(b []byte) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	for i := 0; i < len(b); i += 3 {
		var v uint32
		n := min(3, len(b)-i)
		for k := range 3 {
			v <<= 8
			if k < n {
				v |= uint32(b[i+k])
			}
		}
		for k := range 4 {
			if k <= n {
				sb.WriteByte(enc[v>>(18-6*k)&63])
			} else {
				sb.WriteByte('=')
			}
		}
	}
	return sb.String()
}

// byteIDs returns, for each byte of s, the id of the single-byte token.
func byteIDs(tk *Tokenizer, s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = tk.v.rank(s[i : i+1])
	}
	return out
}

// TestDecodeInvalid checks the replacement of ill-formed UTF-8 against Python's
// bytes.decode("utf-8", "replace") on the same bytes, one token per byte.
func TestDecodeInvalid(t *testing.T) {
	cases := []struct{ in, want string }{
		{"\xe2\x82A", "\uFFFDA"},
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xc0\xaf", "\uFFFD\uFFFD"},
		{"\xe0\x80\xaf", "\uFFFD\uFFFD\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"\xff", "\uFFFD"},
		{"a\xf0\x9f\x98\x80b", "a\U0001F600b"},
		{"\xf0\x9f\x98\xf0\x9f\x98\x80", "\uFFFD\U0001F600"},
		{"\xe2\x82\xe2\x82\xac", "\uFFFD\u20ac"},
		{"\x80\x80", "\uFFFD\uFFFD"},
		{"\xf1\x80\x80", "\uFFFD"},
	}
	tk := mustNew(t, 51865)
	for _, c := range cases {
		ids := byteIDs(tk, c.in)
		if got := tk.Decode(ids); got != c.want {
			t.Errorf("Decode(% x) = %+q, want %+q", c.in, got, c.want)
		}
		if got := string(tk.DecodeBytes(ids)); got != c.in {
			t.Errorf("DecodeBytes = %q, want %q", got, c.in)
		}
	}
}

func TestDecodeSkipsSpecials(t *testing.T) {
	tk := mustNew(t, 51866)
	ids := append([]int{tk.SOT, tk.SOT + 1, tk.Transcribe, tk.TimestampBegin}, tk.Encode(" Hello world")...)
	ids = append(ids, tk.TimestampBegin+100, tk.EOT, -5, tk.NVocab, 1<<40)
	if got := tk.Decode(ids); got != " Hello world" {
		t.Errorf("Decode = %q", got)
	}
}

func TestSOTSequence(t *testing.T) {
	cases := []struct {
		nVocab     int
		lang, task string
		want       []int
		err        error
	}{
		{51865, "en", "transcribe", []int{50258, 50259, 50359}, nil},
		{51865, "de", "translate", []int{50258, 50261, 50358}, nil},
		{51865, "German", "transcribe", []int{50258, 50261, 50359}, nil},
		{51865, "", "", []int{50258}, nil},
		{51865, "yue", "transcribe", nil, ErrUnknownLanguage},
		{51865, "xx", "transcribe", nil, ErrUnknownLanguage},
		{51865, "en", "summarize", nil, ErrUnknownTask},
		{51866, "en", "transcribe", []int{50258, 50259, 50360}, nil},
		{51866, "yue", "translate", []int{50258, 50358, 50359}, nil},
		{51864, "", "", []int{50257}, nil},
		{51864, "en", "transcribe", []int{50257}, nil},
		{51864, "de", "transcribe", nil, ErrUnknownLanguage},
		{51864, "en", "translate", nil, ErrUnknownTask},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d/%s/%s", c.nVocab, c.lang, c.task), func(t *testing.T) {
			got, err := mustNew(t, c.nVocab).SOTSequence(c.lang, c.task)
			if !errors.Is(err, c.err) || !slices.Equal(got, c.want) {
				t.Errorf("got %v, %v; want %v, %v", got, err, c.want, c.err)
			}
		})
	}
}

func TestLanguages(t *testing.T) {
	tk := mustNew(t, 51866)
	langs := tk.Languages()
	if len(langs) != 100 || langs[0] != "en" || langs[1] != "zh" || langs[99] != "yue" || langs[98] != "su" {
		t.Fatalf("Languages() = %v", langs)
	}
	for i, code := range langs {
		id, ok := tk.LanguageToken(code)
		if !ok || id != tk.SOT+1+i || tk.LanguageOf(id) != code {
			t.Errorf("%s: token %d %v, LanguageOf %q", code, id, ok, tk.LanguageOf(id))
		}
	}
	for _, id := range []int{tk.SOT, tk.Translate, 0, tk.NVocab} {
		if s := tk.LanguageOf(id); s != "" {
			t.Errorf("LanguageOf(%d) = %q", id, s)
		}
	}
	if len(mustNew(t, 51865).Languages()) != 99 {
		t.Error("51865 should have 99 languages")
	}
	en := mustNew(t, 51864)
	if en.Languages() != nil || en.LanguageOf(en.SOT+1) != "" {
		t.Error("English-only vocabulary should list no languages")
	}
	for in, want := range map[string]string{"Castilian": "es", "de": "de", "JAPANESE": "ja", "mandarin": "zh", "klingon": ""} {
		if got, _ := LanguageCode(in); got != want {
			t.Errorf("LanguageCode(%q) = %q, want %q", in, got, want)
		}
	}
	if languageName("haw") != "hawaiian" {
		t.Error("languageName(haw)")
	}
}

func TestTimestamps(t *testing.T) {
	tk := mustNew(t, 51865)
	cases := []struct {
		sec  float64
		want int
	}{{0, 50364}, {1.08, 50418}, {1.089, 50418}, {1.091, 50419}, {30, 51864}, {45, 51864}, {-1, 50364}}
	for _, c := range cases {
		if got := tk.TimestampToken(c.sec); got != c.want {
			t.Errorf("TimestampToken(%v) = %d, want %d", c.sec, got, c.want)
		}
	}
	if s, ok := tk.Timestamp(50418); !ok || s != 54*0.02 {
		t.Errorf("Timestamp(50418) = %v, %v", s, ok)
	}
	if _, ok := tk.Timestamp(50363); ok {
		t.Error("notimestamps is not a timestamp")
	}
	if _, ok := tk.Timestamp(51865); ok {
		t.Error("id past the vocabulary is not a timestamp")
	}
}

// TestMergeStrategiesAgree checks the heap merge against tiktoken's scan on pieces with many
// ties and repeats.
func TestMergeStrategiesAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"ab", "aab ", "the quick brown", "ééàü", "你好世界", "  \t", "0123456789"}
	for _, n := range []int{51864, 51865} {
		v := mustNew(t, n).v
		for i := range 400 {
			a := alphabets[i%len(alphabets)]
			var sb strings.Builder
			for range 1 + rng.IntN(smallPiece) {
				sb.WriteByte(a[rng.IntN(len(a))])
			}
			p := sb.String()
			if s, h := v.mergeSmall(p, nil), v.mergeHeap(p, nil); !slices.Equal(s, h) {
				t.Fatalf("%q: scan %v, heap %v", p, s, h)
			}
		}
	}
}

// TestLongPieces checks pieces far longer than any token: a long space run and a 50 KB word
// must encode quickly (no quadratic merging) and round-trip.
func TestLongPieces(t *testing.T) {
	tk := mustNew(t, 51865)
	rng := rand.New(rand.NewPCG(3, 4))
	word := make([]byte, 50_000)
	for i := range word {
		word[i] = byte('a' + rng.IntN(26))
	}
	for _, s := range []string{strings.Repeat(" ", 10_000), strings.Repeat(" ", 10_000) + "x",
		string(word), strings.Repeat("a", 50_000), strings.Repeat("你", 20_000), strings.Repeat("\n", 10_000)} {
		ids := tk.Encode(s)
		if got := tk.Decode(ids); got != s {
			t.Fatalf("round trip of %d bytes failed", len(s))
		}
		if s[0] != ' ' && s[0] != '\n' && len(ids) >= len(s) {
			t.Errorf("%q...: %d tokens for %d bytes: nothing merged", s[:8], len(ids), len(s))
		}
	}
}

func TestVocabIsACopy(t *testing.T) {
	tk := mustNew(t, 51865)
	v := tk.Vocab()
	if len(v) != 50257 || string(v[15947]) != "Hello" || len(v[50256]) != 0 {
		t.Fatalf("Vocab: %d tokens, 15947=%q, 50256=%q", len(v), v[15947], v[50256])
	}
	v[15947][0] = 'J'
	tk.TokenBytes(15947)[0] = 'J'
	if tk.Decode([]int{15947}) != "Hello" {
		t.Error("Vocab or TokenBytes shares memory with the tokenizer")
	}
}

func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", "Hello world", "  a\t\n b", "don't 'S", "你好 🤷‍♂️", "\u3000x\u00a0"} {
		f.Add(s, []byte{0, 1, 2})
	}
	b, err := os.ReadFile(filepath.Join("testdata", "texts.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		var s string
		if json.Unmarshal([]byte(line), &s) == nil && len(s) < 200 {
			f.Add(s, []byte(s))
		}
	}
	tk := mustNew(f, 51866)
	f.Fuzz(func(t *testing.T, s string, raw []byte) {
		ids := tk.Encode(s)
		if utf8.ValidString(s) {
			if got := tk.Decode(ids); got != s {
				t.Fatalf("Decode(Encode(%q)) = %q (ids %v)", s, got, ids)
			}
		} else if got := string(tk.DecodeBytes(ids)); got != s {
			t.Fatalf("DecodeBytes(Encode(%q)) = %q", s, got)
		}
		// Arbitrary ids, special and out of range included: no panic, valid UTF-8.
		var arb []int
		for i := 0; i+1 < len(raw); i += 2 {
			arb = append(arb, (int(raw[i])<<8|int(raw[i+1]))-1000)
		}
		got := tk.Decode(arb)
		if !utf8.ValidString(got) {
			t.Fatalf("Decode(%v) is not valid UTF-8", arb)
		}
		for _, id := range arb {
			_ = tk.TokenBytes(id)
			_ = tk.SpecialName(id)
			_ = tk.LanguageOf(id)
		}
	})
}

func FuzzFromRanks(f *testing.F) {
	f.Add([]byte("QQ== 0\n"), 1510)
	f.Add([]byte("= 0\nQQ== 1\n"), 1511)
	f.Add([]byte("!!\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, nVocab int) {
		tk, err := fromRanks(strings.NewReader(string(in)), nVocab)
		if err != nil {
			return
		}
		if got := tk.Decode(tk.Encode("héllo wörld")); got != "héllo wörld" {
			t.Fatalf("round trip: %q", got)
		}
	})
}

var benchText = strings.Repeat("And so my fellow Americans, ask not what your country can do for you; "+
	"ask what you can do for your country. Il était une fois 你好世界 1234 🤷‍♂️\n", 40)

func BenchmarkEncode(b *testing.B) {
	tk := mustNew(b, 51865)
	rng := rand.New(rand.NewPCG(5, 6))
	word := make([]byte, 50_000)
	for i := range word {
		word[i] = byte('a' + rng.IntN(26))
	}
	cases := []struct{ name, text string }{
		{"text=mixed", benchText},
		{"piece=50KB-word", string(word)},
		{"piece=10000-spaces", strings.Repeat(" ", 10_000)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.text)))
			n := 0
			for b.Loop() {
				n += len(tk.Encode(c.text))
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	tk := mustNew(b, 51865)
	ids := tk.Encode(benchText)
	b.SetBytes(int64(len(benchText)))
	for b.Loop() {
		_ = tk.Decode(ids)
	}
}

func BenchmarkParseRanks(b *testing.B) {
	for b.Loop() {
		if _, err := parseRanks(strings.NewReader(string(multilingualTiktoken))); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFromVocabCustom(t *testing.T) {
	tk := mustNew(t, 51865)
	lines := texts(t)
	v := tk.Vocab()
	v[50256] = []byte("zzzq-unused") // not the embedded vocabulary: built from v itself
	fv, err := fromVocab(v, 51865)
	if err != nil {
		t.Fatal(err)
	}
	if fv.v == tk.v {
		t.Fatal("a different vocabulary got the embedded ranks")
	}
	for i, text := range lines[:300] {
		if a, b := fv.Encode(text), tk.Encode(text); !slices.Equal(a, b) {
			t.Fatalf("line %d: FromVocab encodes %v, New %v", i+1, a, b)
		}
	}
	if same, err := fromVocab(tk.Vocab(), 51865); err != nil || same.v != tk.v {
		t.Errorf("the embedded vocabulary itself should share the embedded ranks (err %v)", err)
	}
	v[0x21-0x21] = []byte("\uFFFD") // "!" lost and not the embedded vocabulary
	if _, err := fromVocab(v, 51865); err == nil {
		t.Error("a vocabulary without a token for '!' should be refused")
	}
	if _, err := fromVocab(v[:100], 51865); err == nil {
		t.Error("a short vocabulary should be refused")
	}
}

func TestSplitWords(t *testing.T) {
	tk := mustNew(t, 51865)
	cases := []struct {
		lang, text string
		want       []string
	}{
		{"en", " Hello world, it's me.", []string{" Hello", " world", ",", " it's", " me", "."}},
		{"en", "state-of-the-art", []string{"state", "-of", "-the", "-art"}},
		{"zh", "你好世界。", nil}, // one word per complete character run, checked below
		{"en", " 🤷‍♂️ ok", []string{" 🤷\u200d♂\ufe0f", " ok"}},
	}
	for _, c := range cases {
		ids := append(tk.Encode(c.text), tk.EOT)
		words, groups := tk.SplitWords(ids, c.lang)
		if strings.Join(words, "") != c.text+"<|endoftext|>" {
			t.Errorf("%q: words %q do not join to the text", c.text, words)
		}
		var flat []int
		for i, g := range groups {
			flat = append(flat, g...)
			if d := tk.Decode(g); d != strings.TrimSuffix(words[i], "<|endoftext|>") {
				t.Errorf("%q: group %v decodes to %q, word %q", c.text, g, d, words[i])
			}
		}
		if !slices.Equal(flat, ids) {
			t.Errorf("%q: groups %v do not cover ids %v", c.text, groups, ids)
		}
		if c.want != nil && !slices.Equal(words[:len(words)-1], c.want) {
			t.Errorf("%q: words %q, want %q + EOT", c.text, words, c.want)
		}
		for _, w := range words {
			if strings.ContainsRune(w, utf8.RuneError) {
				t.Errorf("%q: word %q has a broken character", c.text, w)
			}
		}
	}
}
