package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// ollamaClient speaks Ollama's native API.
type ollamaClient struct{ *conn }

func (o *ollamaClient) Kind() string { return KindOllama }

// ollamaChatRequest is the body of POST /api/chat.
type ollamaChatRequest struct {
	Model    string         `json:"model"`
	Messages []Message      `json:"messages"`
	Stream   bool           `json:"stream"`
	Options  map[string]any `json:"options,omitempty"`
}

func (o *ollamaClient) Chat(ctx context.Context, req Request) (Answer, error) {
	if req.Model == "" {
		return Answer{}, fmt.Errorf("%s: no model given", o.label)
	}
	body := ollamaChatRequest{Model: req.Model, Messages: req.Messages, Stream: true, Options: map[string]any{}}
	if body.Messages == nil {
		body.Messages = []Message{}
	}
	if req.Temperature >= 0 {
		body.Options["temperature"] = req.Temperature
	}
	if req.MaxTokens > 0 {
		body.Options["num_predict"] = req.MaxTokens
	}
	if req.NumCtx > 0 {
		body.Options["num_ctx"] = req.NumCtx
	}
	var ans Answer
	err := o.call(ctx, func(ctx context.Context) error {
		resp, err := o.do(ctx, http.MethodPost, "/api/chat", body)
		if err != nil {
			return o.modelError(err, req.Model)
		}
		defer resp.Body.Close()
		if ans, err = readOllamaStream(resp.Body, req.OnDelta); err != nil {
			return fmt.Errorf("%s: POST /api/chat: %w", o.label, err)
		}
		return nil
	})
	return ans, err
}

// modelError rewrites Ollama's 404 for a model it does not have; other errors pass.
func (o *ollamaClient) modelError(err error, model string) error {
	var se *statusError
	if errors.As(err, &se) && se.Is(ErrModelNotFound) {
		return &tagged{
			msg:   fmt.Sprintf("%s: model %q not found (pull it with: ollama pull %s)", o.label, model, model),
			tag:   ErrModelNotFound,
			cause: err,
		}
	}
	return err
}

// ollamaChunk is one line of Ollama's streamed answer.
type ollamaChunk struct {
	Model   string `json:"model"`
	Message struct {
		Content string `json:"content"`
	} `json:"message"`
	Done            bool            `json:"done"`
	DoneReason      string          `json:"done_reason"`
	PromptEvalCount int             `json:"prompt_eval_count"`
	EvalCount       int             `json:"eval_count"`
	Error           json.RawMessage `json:"error"`
}

// readOllamaStream reads Ollama's NDJSON answer: one JSON object a line, the last with done true.
// A non-streamed answer (one object, done true) reads the same. It reads nothing past the last
// line; any byte sequence gives an Answer or an error.
func readOllamaStream(r io.Reader, onDelta func(string)) (Answer, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var ans Answer
	var text strings.Builder
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ch ollamaChunk
		if err := decodeObject(line, &ch); err != nil {
			if n == 1 {
				return Answer{}, fmt.Errorf("the answer is not Ollama's stream of JSON lines (%v): %s", err, snippet(line))
			}
			return Answer{}, fmt.Errorf("line %d of the answer is not the expected JSON (%v): %s", n, err, snippet(line))
		}
		if msg, _, _ := errorValue(ch.Error); msg != "" {
			return Answer{}, fmt.Errorf("the server reported an error after %d lines of the answer: %s", n-1, msg)
		}
		if ch.Model != "" {
			ans.Model = ch.Model
		}
		if c := ch.Message.Content; c != "" {
			text.WriteString(c)
			if onDelta != nil {
				onDelta(c)
			}
		}
		if ch.Done {
			ans.Text = text.String()
			ans.FinishReason = normalFinish(ch.DoneReason)
			ans.PromptTokens, ans.OutputTokens = max(ch.PromptEvalCount, 0), max(ch.EvalCount, 0)
			return ans, nil
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Answer{}, fmt.Errorf("line %d of the answer is longer than %d MiB", n+1, maxLine>>20)
		}
		return Answer{}, fmt.Errorf("the answer broke off after %d lines: %w", n, err)
	}
	if n == 0 {
		return Answer{}, errors.New("the answer is empty")
	}
	return Answer{}, fmt.Errorf("the answer ended after %d lines without its final (done) line", n)
}

// normalFinish maps the servers' reasons for ending an answer onto "stop" and "length" where
// they mean those, and passes others through, lower case.
func normalFinish(r string) string {
	r = strings.ToLower(strings.TrimSpace(r))
	switch r {
	case "eos", "eos_token", "stop_sequence", "end_turn", "stopped":
		return "stop"
	case "max_tokens", "limit", "max_length":
		return "length"
	}
	return clip(r, 40)
}

func (o *ollamaClient) Models(ctx context.Context) ([]string, error) {
	var list struct {
		Models *[]struct {
			Name  string `json:"name"`
			Model string `json:"model"`
		} `json:"models"`
	}
	err := o.call(ctx, func(ctx context.Context) error {
		if err := o.getJSON(ctx, "/api/tags", &list); err != nil {
			return err
		}
		if list.Models == nil {
			return fmt.Errorf("%s: GET /api/tags: the answer has no model list", o.label)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(*list.Models))
	for _, m := range *list.Models {
		name := m.Name
		if name == "" {
			name = m.Model
		}
		if name != "" {
			names = append(names, name)
		}
	}
	return names, nil
}

func (o *ollamaClient) ContextLength(ctx context.Context, model string) (int, error) {
	var show struct {
		Parameters string                     `json:"parameters"`
		ModelInfo  map[string]json.RawMessage `json:"model_info"`
	}
	err := o.call(ctx, func(ctx context.Context) error {
		// "name" is what Ollama before 0.1.4x took; later ones take "model" and ignore "name".
		err := o.postJSON(ctx, "/api/show", map[string]string{"model": model, "name": model}, &show)
		return o.modelError(err, model)
	})
	if err != nil {
		return 0, err
	}
	if n := infoContextLength(show.ModelInfo); n > 0 {
		return n, nil
	}
	return paramNumCtx(show.Parameters), nil
}

// infoContextLength reads the trained context length from /api/show's model_info: the key
// "<architecture>.context_length", or failing that any key ending in ".context_length".
func infoContextLength(info map[string]json.RawMessage) int {
	var arch string
	_ = json.Unmarshal(info["general.architecture"], &arch)
	if n := positiveInt(info[arch+".context_length"]); arch != "" && n > 0 {
		return n
	}
	best := 0
	for k, v := range info {
		if strings.HasSuffix(k, ".context_length") {
			best = max(best, positiveInt(v))
		}
	}
	return best
}

// positiveInt reads a JSON number that is a positive integer, else 0.
func positiveInt(raw json.RawMessage) int {
	var f float64
	if json.Unmarshal(raw, &f) != nil || f < 1 || f > 1<<40 || f != float64(int64(f)) {
		return 0
	}
	return int(f)
}

// paramNumCtx reads num_ctx from /api/show's parameters text (lines of "name value"), else 0.
func paramNumCtx(params string) int {
	for line := range strings.Lines(params) {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "num_ctx" {
			if n, err := strconv.Atoi(f[1]); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

func (o *ollamaClient) Unload(ctx context.Context, model string) error {
	if model == "" {
		return fmt.Errorf("%s: no model given to unload", o.label)
	}
	return o.call(ctx, func(ctx context.Context) error {
		body := map[string]any{"model": model, "keep_alive": 0, "stream": false}
		return o.modelError(o.postJSON(ctx, "/api/generate", body, nil), model)
	})
}
