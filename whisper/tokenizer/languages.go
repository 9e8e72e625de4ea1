package tokenizer

import "strings"

// language is one of Whisper's languages, in special-token order.
type language struct{ code, name string }

// languages are Whisper's language tokens in vocabulary order: the first 99 in every
// multilingual vocabulary, the 100th ("yue") only in large-v3's.
var languages = [...]language{
	{"en", "english"}, {"zh", "chinese"}, {"de", "german"}, {"es", "spanish"},
	{"ru", "russian"}, {"ko", "korean"}, {"fr", "french"}, {"ja", "japanese"},
	{"pt", "portuguese"}, {"tr", "turkish"}, {"pl", "polish"}, {"ca", "catalan"},
	{"nl", "dutch"}, {"ar", "arabic"}, {"sv", "swedish"}, {"it", "italian"},
	{"id", "indonesian"}, {"hi", "hindi"}, {"fi", "finnish"}, {"vi", "vietnamese"},
	{"he", "hebrew"}, {"uk", "ukrainian"}, {"el", "greek"}, {"ms", "malay"},
	{"cs", "czech"}, {"ro", "romanian"}, {"da", "danish"}, {"hu", "hungarian"},
	{"ta", "tamil"}, {"no", "norwegian"}, {"th", "thai"}, {"ur", "urdu"},
	{"hr", "croatian"}, {"bg", "bulgarian"}, {"lt", "lithuanian"}, {"la", "latin"},
	{"mi", "maori"}, {"ml", "malayalam"}, {"cy", "welsh"}, {"sk", "slovak"},
	{"te", "telugu"}, {"fa", "persian"}, {"lv", "latvian"}, {"bn", "bengali"},
	{"sr", "serbian"}, {"az", "azerbaijani"}, {"sl", "slovenian"}, {"kn", "kannada"},
	{"et", "estonian"}, {"mk", "macedonian"}, {"br", "breton"}, {"eu", "basque"},
	{"is", "icelandic"}, {"hy", "armenian"}, {"ne", "nepali"}, {"mn", "mongolian"},
	{"bs", "bosnian"}, {"kk", "kazakh"}, {"sq", "albanian"}, {"sw", "swahili"},
	{"gl", "galician"}, {"mr", "marathi"}, {"pa", "punjabi"}, {"si", "sinhala"},
	{"km", "khmer"}, {"sn", "shona"}, {"yo", "yoruba"}, {"so", "somali"},
	{"af", "afrikaans"}, {"oc", "occitan"}, {"ka", "georgian"}, {"be", "belarusian"},
	{"tg", "tajik"}, {"sd", "sindhi"}, {"gu", "gujarati"}, {"am", "amharic"},
	{"yi", "yiddish"}, {"lo", "lao"}, {"uz", "uzbek"}, {"fo", "faroese"},
	{"ht", "haitian creole"}, {"ps", "pashto"}, {"tk", "turkmen"}, {"nn", "nynorsk"},
	{"mt", "maltese"}, {"sa", "sanskrit"}, {"lb", "luxembourgish"}, {"my", "myanmar"},
	{"bo", "tibetan"}, {"tl", "tagalog"}, {"mg", "malagasy"}, {"as", "assamese"},
	{"tt", "tatar"}, {"haw", "hawaiian"}, {"ln", "lingala"}, {"ha", "hausa"},
	{"ba", "bashkir"}, {"jw", "javanese"}, {"su", "sundanese"}, {"yue", "cantonese"},
}

// languageAliases are the extra names the reference accepts for a language.
var languageAliases = map[string]string{
	"burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht",
	"letzeburgesch": "lb", "pushto": "ps", "panjabi": "pa", "moldavian": "ro",
	"moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}

// LanguageCode returns the code for a language code, English name or alias
// ("de", "German", "castilian"), case-insensitively, and false if Whisper has no such language.
// It does not depend on a vocabulary; see Tokenizer.LanguageToken for that.
func LanguageCode(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, l := range languages {
		if l.code == s || l.name == s {
			return l.code, true
		}
	}
	if c, ok := languageAliases[s]; ok {
		return c, true
	}
	return "", false
}

// LanguageName returns the English name of a language code ("de" -> "german"), and false if
// Whisper has no such language.
func LanguageName(code string) (string, bool) {
	code = strings.ToLower(strings.TrimSpace(code))
	for _, l := range languages {
		if l.code == code {
			return l.name, true
		}
	}
	return "", false
}
