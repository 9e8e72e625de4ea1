package media

import (
	"fmt"
	"strconv"
	"strings"
)

// iso639 maps the two-letter codes Whisper uses to ISO 639-2/T, the three-letter codes most
// containers store. Whisper's "jw" (Javanese) is listed beside the standard "jv".
var iso639 = map[string]string{
	"af": "afr", "am": "amh", "ar": "ara", "as": "asm", "az": "aze", "ba": "bak", "be": "bel",
	"bg": "bul", "bn": "ben", "bo": "bod", "br": "bre", "bs": "bos", "ca": "cat", "cs": "ces",
	"cy": "cym", "da": "dan", "de": "deu", "el": "ell", "en": "eng", "es": "spa", "et": "est",
	"eu": "eus", "fa": "fas", "fi": "fin", "fo": "fao", "fr": "fra", "gl": "glg", "gu": "guj",
	"ha": "hau", "he": "heb", "hi": "hin", "hr": "hrv", "ht": "hat", "hu": "hun", "hy": "hye",
	"id": "ind", "is": "isl", "it": "ita", "ja": "jpn", "jv": "jav", "jw": "jav", "ka": "kat",
	"kk": "kaz", "km": "khm", "kn": "kan", "ko": "kor", "la": "lat", "lb": "ltz", "ln": "lin",
	"lo": "lao", "lt": "lit", "lv": "lav", "mg": "mlg", "mi": "mri", "mk": "mkd", "ml": "mal",
	"mn": "mon", "mr": "mar", "ms": "msa", "mt": "mlt", "my": "mya", "ne": "nep", "nl": "nld",
	"nn": "nno", "no": "nor", "nb": "nob", "oc": "oci", "pa": "pan", "pl": "pol", "ps": "pus",
	"pt": "por", "ro": "ron", "ru": "rus", "sa": "san", "sd": "snd", "si": "sin", "sk": "slk",
	"sl": "slv", "sn": "sna", "so": "som", "sq": "sqi", "sr": "srp", "su": "sun", "sv": "swe",
	"sw": "swa", "ta": "tam", "te": "tel", "tg": "tgk", "th": "tha", "tk": "tuk", "tl": "tgl",
	"tr": "tur", "tt": "tat", "uk": "ukr", "ur": "urd", "uz": "uzb", "vi": "vie", "yi": "yid",
	"yo": "yor", "zh": "zho",
}

// bibliographic maps the ISO 639-2/B codes (used by older Matroska and MP4 files) to 639-2/T.
var bibliographic = map[string]string{
	"alb": "sqi", "arm": "hye", "baq": "eus", "bur": "mya", "chi": "zho", "cze": "ces",
	"dut": "nld", "fre": "fra", "geo": "kat", "ger": "deu", "gre": "ell", "ice": "isl",
	"mac": "mkd", "mao": "mri", "may": "msa", "per": "fas", "rum": "ron", "slo": "slk",
	"tib": "bod", "wel": "cym",
}

// canonLang reduces a language code ("en", "eng", "ger", "en-US", "pt_BR") to one comparable
// form: ISO 639-2/T where known, else the lowercased primary subtag. "" and "und" give "".
func canonLang(code string) string {
	c := strings.ToLower(strings.TrimSpace(code))
	if i := strings.IndexAny(c, "-_"); i >= 0 {
		c = c[:i]
	}
	if t, ok := iso639[c]; ok {
		return t
	}
	if t, ok := bibliographic[c]; ok {
		return t
	}
	if c == "und" || c == "auto" {
		return ""
	}
	return c
}

// SameLanguage reports whether two language codes name the same language, across ISO 639-1,
// 639-2/T and 639-2/B forms and ignoring region subtags ("en", "eng" and "en-GB" are the same).
// Empty, "und" and "auto" match nothing.
func SameLanguage(a, b string) bool {
	ca, cb := canonLang(a), canonLang(b)
	return ca != "" && ca == cb
}

// selectTrack picks the audio stream to decode. track is "" (default), a 0-based index among
// the audio streams ("1" is the second audio stream, as ffmpeg's 0:a:1), or a language code.
// With no track, the first stream whose language matches lang is chosen, else the first. A
// language that no stream has is an error (ErrNoTrack) unless no stream is tagged at all.
func selectTrack(info *Info, track, lang string) (StreamInfo, error) {
	audio := info.AudioStreams()
	if len(audio) == 0 {
		return StreamInfo{}, ErrNoAudio
	}
	track = strings.TrimSpace(track)
	if track == "" {
		for _, s := range audio {
			if SameLanguage(s.Language, lang) {
				return s, nil
			}
		}
		return audio[0], nil
	}
	if n, err := strconv.Atoi(track); err == nil {
		if n < 0 || n >= len(audio) {
			return StreamInfo{}, fmt.Errorf("%w: audio track %d of %d", ErrNoTrack, n, len(audio))
		}
		return audio[n], nil
	}
	var have []string
	for _, s := range audio {
		if SameLanguage(s.Language, track) {
			return s, nil
		}
		if canonLang(s.Language) != "" {
			have = append(have, s.Language)
		}
	}
	if len(have) == 0 {
		// No stream says what language it is (a phone recording, a WAV): the request cannot
		// be checked, so the default stream is the best answer, as for a batch of mixed files.
		return audio[0], nil
	}
	return StreamInfo{}, fmt.Errorf("%w: no audio track in %q (have %s)", ErrNoTrack, track, strings.Join(have, ", "))
}
