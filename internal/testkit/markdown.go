package testkit

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// MarkdownNote is a Markdown note as a Markdown library reads it (goldmark, CommonMark with
// automatic heading anchors as GitHub makes them).
type MarkdownNote struct {
	Headings []Heading
	Links    []string // every link's destination, in order
	Images   []string // every image's source, in order
	Anchors  []string // explicit anchors (<a id="...">), in order
	Problems []string // links that do not resolve (see ParseMarkdown)
}

// Heading is one heading: its level, text and anchor.
type Heading struct {
	Level int
	Text  string
	ID    string
}

// ParseMarkdown parses md and checks its links: one to "#anchor" must name a heading's anchor or an
// explicit one (<a id="..."></a>);
// one to the media (a relative path equal to mediaHref, escaped) must carry "#t=SECONDS" with
// 0 <= SECONDS <= duration (in seconds; duration <= 0: not checked). Any other destination is a
// problem, so a note cannot link out of its folder unnoticed. An image must be a relative path
// inside the note's folder (callers check that the file is there).
func ParseMarkdown(md []byte, mediaHref string, duration float64) MarkdownNote {
	p := goldmark.New(goldmark.WithParserOptions(parser.WithAutoHeadingID())).Parser()
	doc := p.Parse(text.NewReader(md))
	var note MarkdownNote
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Heading:
			id, _ := n.AttributeString("id")
			idb, _ := id.([]byte)
			note.Headings = append(note.Headings, Heading{Level: n.Level, Text: plain(n, md), ID: string(idb)})
		case *ast.Link:
			note.Links = append(note.Links, string(n.Destination))
		case *ast.Image:
			note.Images = append(note.Images, string(n.Destination))
		case *ast.RawHTML: // an explicit anchor: <a id="...">
			var raw []byte
			for i := range n.Segments.Len() {
				seg := n.Segments.At(i)
				raw = append(raw, seg.Value(md)...)
			}
			if m := anchorID.FindSubmatch(raw); m != nil {
				note.Anchors = append(note.Anchors, string(m[1]))
			}
		}
		return ast.WalkContinue, nil
	})
	ids := map[string]bool{}
	for _, h := range note.Headings {
		ids[h.ID] = true
	}
	for _, a := range note.Anchors {
		if ids[a] {
			note.Problems = append(note.Problems, fmt.Sprintf("anchor %q is there twice", a))
		}
		ids[a] = true
	}
	for _, l := range note.Links {
		target, frag, _ := strings.Cut(l, "#")
		switch {
		case target == "":
			if !ids[frag] {
				note.Problems = append(note.Problems, fmt.Sprintf("link %q: no heading has that anchor", l))
			}
		default:
			path, err := url.PathUnescape(target)
			if err != nil || path != mediaHref && strings.TrimPrefix(path, "./") != mediaHref {
				note.Problems = append(note.Problems, fmt.Sprintf("link %q: not the media %q", l, mediaHref))
				continue
			}
			if frag == "" { // the source line links the file itself
				continue
			}
			sec, err := strconv.ParseFloat(strings.TrimPrefix(frag, "t="), 64)
			if !strings.HasPrefix(frag, "t=") || err != nil || sec < 0 || duration > 0 && sec > duration {
				note.Problems = append(note.Problems, fmt.Sprintf("link %q: not a time within the media's %.0f s", l, duration))
			}
		}
	}
	for _, img := range note.Images {
		p, err := url.PathUnescape(img)
		if err != nil || p == "" || strings.Contains(p, ":") || strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..") {
			note.Problems = append(note.Problems, fmt.Sprintf("image %q: not a path inside the note's folder", img))
		}
	}
	return note
}

var anchorID = regexp.MustCompile(`^<a id="([^"]+)">$`)

// plain is the text of a node's inline children, without markup.
func plain(n ast.Node, src []byte) string {
	var b strings.Builder
	_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			if t, ok := c.(*ast.Text); ok {
				b.Write(util.UnescapePunctuations(t.Segment.Value(src)))
			}
		}
		return ast.WalkContinue, nil
	})
	return b.String()
}
