package summarize

import (
	"strings"
	"unicode"
)

// Rules for action items and decisions. They favour precision: a sentence is listed only on a
// clear cue, never when it is a question, negated ("we don't need to") or conditional ("if we
// need to").

// decisionPhrases mark a decision wherever they occur (contractions expanded).
var decisionPhrases = phrases(
	"the decision is", "the decision was", "our decision is", "our decision was", "final decision",
	"it was decided", "it is decided", "it has been decided", "it's been decided",
	"let us go with", "let us go ahead with", "we will go with", "we are going with",
	"we are going to go with", "we will go ahead with", "we are going ahead with",
	"we settled on", "we have settled on", "we chose", "we have chosen", "we picked",
	"we have picked", "approved", "signed off", "consensus is", "the plan is to",
	"we will stick with", "we are sticking with",
)

// decisionVerbs mark a decision after a collective subject ("we decided", "the team agreed").
var decisionVerbs = setOf("decided", "agreed", "concluded", "resolved", "voted")

var decisionSubjects = setOf("we", "i", "team", "everyone", "everybody", "all", "group",
	"committee", "board", "management", "they", "both")

// actionPhrases mark an action item wherever they occur.
var actionPhrases = phrases(
	"action item", "action items", "todo", "follow up", "followup", "remind me", "remember to",
	"do not forget", "make sure", "assigned to", "deadline", "is due", "are due", "due by",
	"asap", "please", "take care of", "reach out to", "get back to", "sign up for",
)

// actionSubjects may commit to or be asked for an action before a modal.
var actionSubjects = setOf("i", "we", "you", "someone", "somebody", "everyone", "everybody",
	"team", "us")

// modals express a commitment or an obligation. "you will" is a prediction, not a request.
var modals = phrases("will", "need to", "needs to", "have to", "has to", "must", "should",
	"am going to", "are going to", "is going to", "am gonna", "are gonna", "got to", "gotta",
	"ought to")

// softWords are left out before the rules apply: they may stand anywhere in a cue.
var softWords = setOf("also", "just", "really", "definitely", "still", "then", "actually",
	"quickly", "all", "both", "each", "first", "now", "certainly", "absolutely", "probably")

// notActions are verbs that after "I will", "we should", "let's" ... announce talk or thought,
// not a task.
var notActions = setOf("be", "see", "say", "explain", "describe", "mention", "discuss",
	"cover", "focus", "begin", "start", "continue", "wrap", "summarize", "recap", "admit",
	"guess", "think", "bet", "imagine", "assume", "hope", "know", "feel", "like", "love",
	"notice", "understand", "agree", "wait", "look", "keep", "move", "dive", "turn", "switch",
	"try", "enjoy", "die", "win", "lose", "need", "want", "wonder", "consider", "remember",
	"probably", "maybe", "go", "come", "get", "do", "leave", "stop", "take", "pause", "hear",
	"find", "talk", "speak", "show", "tell", "walk", "let")

// notActionsUnless are verbs of notActions that are tasks when the next word says so:
// "talk to legal", "tell John", "get back to them", "find a venue" ...
var notActionsUnless = map[string][]string{
	"talk": {"to", "with"}, "speak": {"to", "with"}, "tell": {"him", "her", "them", "everyone", "the"},
	"get": {"back", "in", "the", "a", "it", "them", "this", "that"}, "find": {"a", "an", "out", "the", "someone"},
	"go": {"ahead"}, "take": {"care", "over", "ownership", "notes"}, "look": {"into"},
	"keep": {"track"}, "show": {"the", "them", "him", "her"}, "do": {"the", "it", "this", "that"},
	"come": {"up"}, "stop": {"by"}, "leave": {"a"},
}

// imperatives are verbs that, opening a sentence, ask for a task.
var imperatives = setOf("send", "email", "call", "ask", "bring", "tell", "pick", "clean", "check", "schedule", "book", "review", "update", "fix",
	"prepare", "draft", "write", "share", "submit", "finish", "complete", "order", "buy",
	"contact", "remind", "confirm", "file", "deploy", "merge", "ping", "forward", "invite",
	"organize", "arrange", "create", "add", "cancel", "reply", "respond", "sign", "pay", "print",
	"upload", "install", "test", "reschedule", "double-check", "verify", "notify", "inform",
	"publish", "release", "ship", "document", "assign", "collect", "gather", "compile", "renew",
	"register", "request", "set")

// functionWords cannot be the verb of a task.
var functionWords = setOf("a", "an", "the", "this", "that", "these", "those", "it", "is", "are",
	"was", "were", "been", "to", "of", "in", "on", "at", "for", "with", "and", "or", "but", "so",
	"very", "too", "as", "than", "i", "we", "you", "they", "he", "she", "me", "us", "them",
	"there", "here", "now", "what", "how", "why", "when", "where", "who", "which", "will",
	"would", "can", "could", "should", "must", "might", "may", "also", "just", "be")

var negations = setOf("not", "never", "no", "nobody", "neither", "nor")

var conditionals = setOf("if", "unless", "whether", "whenever", "once", "until", "suppose",
	"supposing")

// classify tells whether a sentence is an action item and whether it is a decision. A decision
// is not also listed as an action.
func classify(text string) (action, decision bool) {
	t := strings.TrimRightFunc(strings.TrimSpace(text), func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune("\"')]}’”»", r)
	})
	if t == "" || strings.HasSuffix(t, "?") {
		return false, false
	}
	ws, caps := words(t)
	// Soft words change nothing here: "we also agreed", "I'll just send", "is also due".
	keep := 0
	for k, w := range ws {
		if !softWords[w] {
			ws[keep], caps[keep] = w, caps[k]
			keep++
		}
	}
	ws, caps = ws[:keep], caps[:keep]
	if len(ws) == 0 {
		return false, false
	}
	if isDecision(ws) {
		return false, true
	}
	return isAction(ws, caps), false
}

func isDecision(ws []string) bool {
	for _, p := range decisionPhrases {
		for _, i := range find(ws, p) {
			if !negatedBefore(ws, i, 3) && !conditionalBefore(ws, i) {
				return true
			}
		}
	}
	for i, w := range ws {
		if !decisionVerbs[w] {
			continue
		}
		for j := max(0, i-3); j < i; j++ {
			if decisionSubjects[ws[j]] && !negatedBetween(ws, j, i) && !conditionalBefore(ws, j) {
				return true
			}
		}
	}
	return false
}

func isAction(ws []string, caps []bool) bool {
	for _, p := range actionPhrases {
		for _, i := range find(ws, p) {
			if !negatedBefore(ws, i, 2) {
				if p[0] == "please" && i+1 < len(ws) && ws[i+1] == "note" {
					continue
				}
				return true
			}
		}
	}
	if imperatives[ws[0]] && (len(ws) < 2 || ws[1] != "me" || ws[0] == "send" || ws[0] == "email") {
		return true
	}
	// "let's" + a task verb.
	for _, i := range find(ws, []string{"let", "us"}) {
		if i+2 < len(ws) && task(ws, i+2) {
			return true
		}
	}
	// A subject, a modal and a task verb: "I'll send", "we need to book", "Anna should call".
	for i, w := range ws {
		// A name: capitalized, not a common word. Opening the sentence, where every word is
		// capitalized, it needs a verb from imperatives ("Anna will send", not "Prices will rise").
		name := caps[i] && !stopwords[w] && !decisionSubjects[w]
		if !actionSubjects[w] && !name {
			continue
		}
		if conditionalBefore(ws, i) {
			continue
		}
		j := i + 1
		for _, m := range modals {
			if !match(ws, j, m) {
				continue
			}
			if w == "you" && (m[0] == "will" || m[len(m)-1] == "going") {
				continue // a prediction
			}
			v := j + len(m)
			if v < len(ws) && negations[ws[v]] {
				continue
			}
			if v+1 < len(ws) && ws[v] == "have" && ws[v+1] == "to" { // "we will have to send"
				v += 2
			}
			if v < len(ws) && task(ws, v) && (i > 0 || !name || actionSubjects[w] || imperatives[ws[v]]) {
				return true
			}
		}
	}
	return false
}

// task reports whether ws[v] starts a task: a verb not among notActions (or one of them with a
// word after it that makes it a task).
func task(ws []string, v int) bool {
	w := ws[v]
	if negations[w] || functionWords[w] {
		return false
	}
	if notActions[w] {
		for _, next := range notActionsUnless[w] {
			if v+1 < len(ws) && ws[v+1] == next {
				return true
			}
		}
		return false
	}
	return true
}

func negatedBefore(ws []string, i, n int) bool {
	for j := max(0, i-n); j < i; j++ {
		if negations[ws[j]] {
			return true
		}
	}
	return false
}

func negatedBetween(ws []string, a, b int) bool {
	for j := a + 1; j < b; j++ {
		if negations[ws[j]] {
			return true
		}
	}
	return false
}

func conditionalBefore(ws []string, i int) bool {
	for j := 0; j < i; j++ {
		if conditionals[ws[j]] {
			return true
		}
	}
	return false
}

func match(ws []string, i int, p []string) bool {
	if i+len(p) > len(ws) {
		return false
	}
	for k, w := range p {
		if ws[i+k] != w {
			return false
		}
	}
	return true
}

func find(ws []string, p []string) []int {
	var at []int
	for i := 0; i+len(p) <= len(ws); i++ {
		if match(ws, i, p) {
			at = append(at, i)
		}
	}
	return at
}

func phrases(ps ...string) [][]string {
	out := make([][]string, len(ps))
	for i, p := range ps {
		out[i], _ = words(p)
	}
	return out
}

// contractions expands the contractions the rules look at.
var contractions = map[string][]string{
	"let's": {"let", "us"}, "won't": {"will", "not"}, "can't": {"can", "not"},
	"shan't": {"shall", "not"}, "i'm": {"i", "am"}, "it's": {"it", "is"}, "that's": {"that", "is"},
	"there's": {"there", "is"}, "here's": {"here", "is"}, "what's": {"what", "is"},
	"he's": {"he", "is"}, "she's": {"she", "is"}, "gonna": {"going", "to"}, "wanna": {"want", "to"},
	"to-do": {"todo"}, "to-dos": {"todo"}, "todos": {"todo"}, "follow-up": {"follow", "up"},
	"follow-ups": {"follow", "up"},
}

// words lowercases and splits text into words (letters, digits, apostrophes and inner
// hyphens), expanding contractions; caps tells which words were capitalized in the text.
func words(text string) (ws []string, caps []bool) {
	text = strings.ReplaceAll(text, "’", "'")
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' || r == '-')
	})
	for _, f := range fields {
		f = strings.Trim(f, "'-")
		if f == "" {
			continue
		}
		r := []rune(f)
		capital := unicode.IsUpper(r[0])
		w := strings.ToLower(f)
		var parts []string
		switch {
		case contractions[w] != nil:
			parts = contractions[w]
		case strings.HasSuffix(w, "n't"):
			parts = []string{w[:len(w)-3], "not"}
		case strings.HasSuffix(w, "'ll"):
			parts = []string{w[:len(w)-3], "will"}
		case strings.HasSuffix(w, "'re"):
			parts = []string{w[:len(w)-3], "are"}
		case strings.HasSuffix(w, "'ve"):
			parts = []string{w[:len(w)-3], "have"}
		case strings.HasSuffix(w, "'d"):
			parts = []string{w[:len(w)-2], "would"}
		case strings.HasSuffix(w, "'m"):
			parts = []string{w[:len(w)-2], "am"}
		case strings.HasSuffix(w, "'s"):
			parts = []string{w[:len(w)-2]}
		case strings.Contains(w, "-") && w != "double-check":
			parts = strings.Split(w, "-")
		default:
			parts = []string{w}
		}
		for i, p := range parts {
			if p == "" {
				continue
			}
			ws = append(ws, p)
			caps = append(caps, capital && i == 0)
		}
	}
	return ws, caps
}
