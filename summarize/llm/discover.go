package llm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// Probe is one place Discover looks for a server: a port on 127.0.0.1 and the API expected there.
type Probe struct {
	// Kind is as Options.Kind: "ollama", or "openai" (also "llamacpp", "lmstudio", "mlx").
	Kind string
	// Port is the TCP port on 127.0.0.1.
	Port int
}

// DefaultProbes are the local servers' default ports, in Discover's order of preference: Ollama
// (11434), llama.cpp's llama-server or mlx_lm.server (8080: both speak the OpenAI-compatible API,
// so one probe serves both, and ContextLength tells them apart), LM Studio (1234).
func DefaultProbes() []Probe {
	return []Probe{{KindOllama, 11434}, {"llamacpp", 8080}, {"lmstudio", 1234}}
}

// Discover finds an LLM server on this machine with no configuration: it asks each of
// Options.Probes (default DefaultProbes) at once for its models, each within
// Options.ProbeTimeout, and returns a client for the first in order that offers a chat model,
// with the model ChooseModel picks from its list. The client is made with opts (its Kind set to
// the probe's). The error wraps ErrUnavailable when no server answers, ErrModelNotFound when
// servers answer but none has a chat model.
func Discover(ctx context.Context, opts Options) (Client, string, error) {
	probes := opts.Probes
	if len(probes) == 0 {
		probes = DefaultProbes()
	}
	type result struct {
		endpoint, kind, model string
		err                   error
	}
	results := make([]result, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() {
			r := &results[i]
			r.endpoint = fmt.Sprintf("http://127.0.0.1:%d", p.Port)
			if p.Port <= 0 || p.Port > 65535 {
				r.err = fmt.Errorf("port %d is not a TCP port", p.Port)
				return
			}
			po := opts
			po.Kind, po.AllowRemote, po.Retries = p.Kind, false, -1
			po.Timeout = opts.probeTimeout()
			c, err := New(r.endpoint, po)
			if err != nil {
				r.err = err
				return
			}
			r.kind = c.Kind()
			models, err := c.Models(ctx)
			if err != nil {
				r.err = err
				return
			}
			if r.model, err = ChooseModel(models, ""); err != nil {
				r.err = &tagged{msg: fmt.Sprintf("%s: %v", serverLabel(r.kind, r.endpoint), err), tag: ErrModelNotFound}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("looking for a local LLM server: %w", err)
	}
	var reasons []string
	noModel := false
	for _, r := range results {
		if r.err == nil {
			o := opts
			o.Kind = r.kind
			c, err := New(r.endpoint, o)
			if err != nil {
				return nil, "", err
			}
			return c, r.model, nil
		}
		noModel = noModel || errors.Is(r.err, ErrModelNotFound)
		reasons = append(reasons, r.err.Error())
	}
	if noModel {
		return nil, "", &tagged{msg: "a local LLM server answers, but has no chat model: " + strings.Join(reasons, "; "), tag: ErrModelNotFound}
	}
	return nil, "", &tagged{
		msg: "no local LLM server found (start Ollama, llama-server or LM Studio's server, or set the endpoint): " + strings.Join(reasons, "; "),
		tag: ErrUnavailable,
	}
}

// ChooseModel returns the model to use from a server's list. With want given, it is want if
// listed (for Ollama, "name" also matches "name:latest"; case is ignored if nothing matches
// exactly), else an error wrapping ErrModelNotFound that names the models there are. With want
// "", it picks: never an embedding or reranking model; an instruction or chat model
// ("…-instruct", "…-it", "…chat…") before others; base and text-only models ("…:text",
// "…-base") last; among equals, the first in alphabetical order, so that the same list always
// gives the same model.
func ChooseModel(models []string, want string) (string, error) {
	if want != "" {
		if slices.Contains(models, want) {
			return want, nil
		}
		if !strings.Contains(want, ":") && slices.Contains(models, want+":latest") {
			return want + ":latest", nil
		}
		for _, m := range models {
			if strings.EqualFold(m, want) {
				return m, nil
			}
		}
		return "", &tagged{msg: fmt.Sprintf("model %q is not on the server; it has %s", want, listNames(models)), tag: ErrModelNotFound}
	}
	best, bestScore := "", -1
	for _, m := range models {
		s := chatScore(m)
		if s > bestScore || (s == bestScore && s >= 0 && m < best) {
			best, bestScore = m, s
		}
	}
	if bestScore < 0 {
		return "", &tagged{msg: "no chat model: the server has " + listNames(models), tag: ErrModelNotFound}
	}
	return best, nil
}

// chatScore ranks a model name for chat: -1 never (embedding, reranking), 2 instruction or chat
// tuned, 0 base or text-only, 1 otherwise.
func chatScore(name string) int {
	words := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	if strings.TrimSpace(name) == "" {
		return -1
	}
	score := 1
	for _, w := range words {
		switch {
		case strings.Contains(w, "embed"), strings.Contains(w, "rerank"):
			return -1
		case w == "it" || w == "chat" || strings.HasPrefix(w, "instruct"):
			score = 2
		case (w == "text" || w == "base") && score == 1:
			score = 0
		}
	}
	return score
}

// listNames lists model names for a message, at most 20 of them.
func listNames(models []string) string {
	switch {
	case len(models) == 0:
		return "no models"
	case len(models) > 20:
		return strings.Join(models[:20], ", ") + fmt.Sprintf(" and %d more", len(models)-20)
	}
	return strings.Join(models, ", ")
}
