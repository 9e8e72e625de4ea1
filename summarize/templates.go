package summarize

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Template is what the language model is asked for: the kind of recording, in its words.
type Template struct {
	Name  string
	About string // what the recording is, for the instructions
	Focus string // what the summary should bring out
	Items bool   // ask for action items and decisions
}

// Templates are the kinds of recording the summary can be asked for (--template).
var Templates = []Template{
	{Name: "meeting", About: "a meeting between several people",
		Focus: "what was discussed, what was decided and who does what next", Items: true},
	{Name: "lecture", About: "a lecture or a talk",
		Focus: "the main ideas in the order they are taught, and the terms they rest on"},
	{Name: "interview", About: "an interview or a conversation between a host and a guest",
		Focus: "who the guest is, the questions asked and the substance of the answers"},
	{Name: "memo", About: "a voice memo someone recorded for themselves",
		Focus: "the ideas and reminders in it, briefly", Items: true},
}

// TemplateNames lists the names --template accepts: "auto" and each template's.
func TemplateNames() []string {
	names := []string{"auto"}
	for _, t := range Templates {
		names = append(names, t.Name)
	}
	return names
}

// PickTemplate returns the named template. "auto" (or "") picks by length: a memo under ten
// minutes, a meeting otherwise.
func PickTemplate(name string, duration time.Duration) (Template, error) {
	if name == "" || name == "auto" {
		name = "meeting"
		if duration < 10*time.Minute {
			name = "memo"
		}
	}
	i := slices.IndexFunc(Templates, func(t Template) bool { return t.Name == name })
	if i < 0 {
		return Template{}, fmt.Errorf("unknown summary template %q (want one of %s)", name, strings.Join(TemplateNames(), ", "))
	}
	return Templates[i], nil
}
