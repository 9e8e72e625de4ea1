package sidecar

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// SchemaVersion is the version of the JSON sidecar's schema (Document). It changes when a field
// changes meaning or goes away; adding a field does not change it.
const SchemaVersion = 1

// Document is the JSON sidecar, the full record of a run. Times are seconds from the start of
// the input, rounded to the millisecond.
type Document struct {
	SchemaVersion int                `json:"schema_version"`
	Language      string             `json:"language"`
	LanguageProbs map[string]float64 `json:"language_probs,omitempty"`
	Duration      float64            `json:"duration"`
	Text          string             `json:"text"` // the transcript's paragraphs, blank-line separated
	Segments      []DocSegment       `json:"segments"`
	Summary       string             `json:"summary,omitempty"` // Markdown
	Chapters      []DocChapter       `json:"chapters,omitempty"`
	Points        []DocItem          `json:"summary_points,omitempty"` // the summary's points, with times where known
	Actions       []DocItem          `json:"action_items,omitempty"`
	Decisions     []DocItem          `json:"decisions,omitempty"`
	SummaryInfo   *SummaryInfo       `json:"summary_info,omitempty"`
	// Removed lists what the hallucination guard took out of the transcript, and why.
	Removed []DocRemoval `json:"removed,omitempty"`
	// Gaps lists the stretches of speech no segment covers, and why: the speech was heard (by
	// the voice activity detection, or without it by the audio's level) but every attempt at
	// it returned no text. Absent when there are none.
	Gaps []DocGap `json:"gaps,omitempty"`
	// Retries counts the windows decoded again because their decoding left speech uncovered
	// (absent: none).
	Retries    int           `json:"retries,omitempty"`
	Provenance DocProvenance `json:"provenance"`
}

// DocGap is one stretch of speech left out of the transcript.
type DocGap struct {
	Start    float64 `json:"start"`
	End      float64 `json:"end"`
	Reason   string  `json:"reason"`   // no_text, judged_silence, skipped
	Speech   string  `json:"speech"`   // vad, energy
	Attempts int     `json:"attempts"` // windows that tried it
}

// DocRemoval is one stretch of decoded text that the guard removed.
type DocRemoval struct {
	Start  float64 `json:"start"`
	End    float64 `json:"end"`
	Text   string  `json:"text"`
	Reason string  `json:"reason"` // repetition_loop, repeated_text, silence_hallucination
}

// DocSegment is one segment with its decoding statistics.
type DocSegment struct {
	ID               int        `json:"id"`
	Start            float64    `json:"start"`
	End              float64    `json:"end"`
	Text             string     `json:"text"`
	Language         string     `json:"language,omitempty"` // when it differs between segments
	Tokens           []DocToken `json:"tokens"`
	Words            []DocWord  `json:"words,omitempty"` // only when word times were computed
	AvgLogProb       float64    `json:"avg_logprob"`
	NoSpeechProb     float64    `json:"no_speech_prob"`
	CompressionRatio float64    `json:"compression_ratio"`
	Temperature      float64    `json:"temperature"`
}

// DocToken is one text token. Start and End are absent when the token's times are not known.
// Bytes holds the token's raw bytes when they are not valid UTF-8 on their own (a character
// split across tokens); Text then has U+FFFD in their place.
type DocToken struct {
	ID          int      `json:"id"`
	Text        string   `json:"text"`
	Bytes       []int    `json:"bytes,omitempty"`
	Probability float64  `json:"probability"`
	Start       *float64 `json:"start,omitempty"`
	End         *float64 `json:"end,omitempty"`
}

// DocWord is one timed word.
type DocWord struct {
	Word        string  `json:"word"`
	Start       float64 `json:"start"`
	End         float64 `json:"end"`
	Probability float64 `json:"probability"`
}

// DocChapter is a chapter mark.
type DocChapter struct {
	Start   float64 `json:"start"`
	Title   string  `json:"title"`
	Summary string  `json:"summary,omitempty"`
	// Image is a still of the video where the chapter starts, relative to the sidecars' folder
	// (slash-separated); absent for audio.
	Image string `json:"image,omitempty"`
}

// DocItem is an action item or a decision; Start is absent when not known.
type DocItem struct {
	Text  string   `json:"text"`
	Start *float64 `json:"start,omitempty"`
}

func docItems(items []Item) []DocItem {
	var out []DocItem
	for _, it := range items {
		di := DocItem{Text: it.Text}
		if it.HasStart {
			s := seconds(it.Start)
			di.Start = &s
		}
		out = append(out, di)
	}
	return out
}

func items(docs []DocItem, dur func(float64) time.Duration) []Item {
	var out []Item
	for _, di := range docs {
		it := Item{Text: di.Text}
		if di.Start != nil {
			it.Start, it.HasStart = dur(*di.Start), true
		}
		out = append(out, it)
	}
	return out
}

// DocProvenance is Provenance plus what WriteAll adds: the fingerprint of the settings and the
// formats written in the same run.
type DocProvenance struct {
	Provenance
	Fingerprint string   `json:"settings_fingerprint"`
	Outputs     []Format `json:"outputs"`
	// Media is the input's path relative to the sidecars, slash-separated, as the note links it
	// (`transcribe summarize` writes the note again from the JSON alone).
	Media string `json:"media,omitempty"`
	// NoChapterFrames records that the note was asked to show no stills of the video
	// (Options.NoChapterFrames), so that writing it again keeps it so.
	NoChapterFrames bool `json:"no_chapter_frames,omitempty"`
}

func seconds(d time.Duration) float64 {
	return math.Round(d.Seconds()*1000) / 1000
}

// NewDocument builds the JSON sidecar's document for t. fingerprint and outputs go into the
// provenance (see Fingerprint and WriteAll).
func NewDocument(t *Transcript, fingerprint string, outputs []Format) *Document {
	d := &Document{
		SchemaVersion: SchemaVersion,
		Language:      t.Language,
		LanguageProbs: t.LanguageProbs,
		Duration:      seconds(t.Duration),
		Text:          joinParagraphs(paragraphs(t, false)),
		Segments:      make([]DocSegment, 0, len(t.Segments)),
		Summary:       t.Summary,
		Points:        docItems(t.Points),
		Actions:       docItems(t.Actions),
		Decisions:     docItems(t.Decisions),
		SummaryInfo:   t.SummaryInfo,
		Provenance:    DocProvenance{Provenance: t.Provenance, Fingerprint: fingerprint, Outputs: outputs},
	}
	if d.Provenance.Settings == nil {
		d.Provenance.Settings = map[string]any{}
	}
	for _, s := range t.Segments {
		ds := DocSegment{
			ID: s.ID, Start: seconds(s.Start), End: seconds(s.End), Text: s.Text, Language: s.Language,
			Tokens:     make([]DocToken, 0, len(s.Tokens)),
			AvgLogProb: s.AvgLogProb, NoSpeechProb: s.NoSpeechProb,
			CompressionRatio: s.CompressionRatio, Temperature: s.Temperature,
		}
		for _, tk := range s.Tokens {
			dt := DocToken{ID: tk.ID, Text: tk.Text, Probability: tk.P}
			if !utf8.ValidString(tk.Text) {
				for _, b := range []byte(tk.Text) {
					dt.Bytes = append(dt.Bytes, int(b))
				}
			}
			if tk.Start != 0 || tk.End != 0 {
				a, b := seconds(tk.Start), seconds(tk.End)
				dt.Start, dt.End = &a, &b
			}
			ds.Tokens = append(ds.Tokens, dt)
		}
		for _, w := range s.Words {
			ds.Words = append(ds.Words, DocWord{Word: w.Text, Start: seconds(w.Start), End: seconds(w.End), Probability: w.P})
		}
		d.Segments = append(d.Segments, ds)
	}
	for _, c := range t.Chapters {
		d.Chapters = append(d.Chapters, DocChapter{Start: seconds(c.Start), Title: c.Title, Summary: c.Summary, Image: c.Image})
	}
	for _, r := range t.Removed {
		d.Removed = append(d.Removed, DocRemoval{Start: seconds(r.Start), End: seconds(r.End), Text: r.Text, Reason: r.Reason})
	}
	d.Retries = t.Retries
	for _, g := range t.Gaps {
		d.Gaps = append(d.Gaps, DocGap{Start: seconds(g.Start), End: seconds(g.End), Reason: g.Reason, Speech: g.Speech, Attempts: g.Attempts})
	}
	return d
}

// Marshal renders the document as indented JSON with a final newline. NaN and infinite
// statistics (which JSON cannot hold) are an error.
func (d *Document) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("json: %w", err)
	}
	return b.Bytes(), nil
}

// ReadDocument parses a JSON sidecar. A document of another schema version is an error that
// wraps ErrSchema.
func ReadDocument(data []byte) (*Document, error) {
	var probe struct {
		SchemaVersion int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if probe.SchemaVersion != SchemaVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrSchema, probe.SchemaVersion, SchemaVersion)
	}
	var d Document
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &d, nil
}

// Transcript is the transcript the document was made from (NewDocument), as far as the document
// holds it: times to the millisecond, token bytes as written, the provenance without the
// fingerprint and outputs. Rendering it gives the sidecars of the run again.
func (d *Document) Transcript() *Transcript {
	dur := func(s float64) time.Duration { return time.Duration(math.Round(s*1000)) * time.Millisecond }
	t := &Transcript{
		Language: d.Language, LanguageProbs: d.LanguageProbs, Duration: dur(d.Duration), Summary: d.Summary,
		Provenance: d.Provenance.Provenance, SummaryInfo: d.SummaryInfo,
		Points: items(d.Points, dur), Actions: items(d.Actions, dur), Decisions: items(d.Decisions, dur),
	}
	for _, ds := range d.Segments {
		s := Segment{
			ID: ds.ID, Start: dur(ds.Start), End: dur(ds.End), Text: ds.Text, Language: ds.Language,
			AvgLogProb: ds.AvgLogProb, NoSpeechProb: ds.NoSpeechProb,
			CompressionRatio: ds.CompressionRatio, Temperature: ds.Temperature,
		}
		for _, dt := range ds.Tokens {
			tk := Token{ID: dt.ID, Text: dt.Text, P: dt.Probability}
			if dt.Bytes != nil {
				b := make([]byte, len(dt.Bytes))
				for i, v := range dt.Bytes {
					b[i] = byte(v)
				}
				tk.Text = string(b)
			}
			if dt.Start != nil && dt.End != nil {
				tk.Start, tk.End = dur(*dt.Start), dur(*dt.End)
			}
			s.Tokens = append(s.Tokens, tk)
		}
		for _, w := range ds.Words {
			s.Words = append(s.Words, Word{Text: w.Word, Start: dur(w.Start), End: dur(w.End), P: w.Probability})
		}
		t.Segments = append(t.Segments, s)
	}
	for _, c := range d.Chapters {
		t.Chapters = append(t.Chapters, Chapter{Start: dur(c.Start), Title: c.Title, Summary: c.Summary, Image: c.Image})
	}
	for _, r := range d.Removed {
		t.Removed = append(t.Removed, Removal{Start: dur(r.Start), End: dur(r.End), Text: r.Text, Reason: r.Reason})
	}
	t.Retries = d.Retries
	for _, g := range d.Gaps {
		t.Gaps = append(t.Gaps, Gap{Start: dur(g.Start), End: dur(g.End), Reason: g.Reason, Speech: g.Speech, Attempts: g.Attempts})
	}
	return t
}
