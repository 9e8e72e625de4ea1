package llm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	sse "github.com/tmaxmax/go-sse"
)

// openaiClient speaks the OpenAI-compatible API of llama.cpp, LM Studio, mlx_lm.server and others.
type openaiClient struct{ *conn }

func (o *openaiClient) Kind() string { return KindOpenAI }

// openaiChatRequest is the body of POST /v1/chat/completions.
type openaiChatRequest struct {
	Model         string    `json:"model"`
	Messages      []Message `json:"messages"`
	Stream        bool      `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Temperature *float64 `json:"temperature,omitempty"`
	MaxTokens   int      `json:"max_tokens,omitempty"`
}

func (o *openaiClient) Chat(ctx context.Context, req Request) (Answer, error) {
	body := openaiChatRequest{Model: req.Model, Messages: req.Messages, Stream: true, MaxTokens: max(req.MaxTokens, 0)}
	if body.Messages == nil {
		body.Messages = []Message{}
	}
	body.StreamOptions.IncludeUsage = true // the usage chunk carries the prompt's token count
	if req.Temperature >= 0 {
		body.Temperature = &req.Temperature
	}
	var ans Answer
	err := o.call(ctx, func(ctx context.Context) error {
		resp, err := o.do(ctx, http.MethodPost, "/v1/chat/completions", body)
		if err != nil {
			var se *statusError
			if errors.As(err, &se) && se.Is(ErrModelNotFound) {
				return &tagged{msg: fmt.Sprintf("%s: model %q not found: %s", o.label, req.Model, se.msg), tag: ErrModelNotFound, cause: err}
			}
			return err
		}
		defer resp.Body.Close()
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
			// A server that does not stream answers with the whole completion at once.
			ans, err = readOpenAIJSON(resp.Body)
		} else {
			ans, err = readSSEStream(resp.Body, req.OnDelta)
		}
		if err != nil {
			return &tagged{msg: fmt.Sprintf("%s: POST /v1/chat/completions: %v", o.label, err), tag: err}
		}
		return nil
	})
	return ans, err
}

// openaiChunk is one event of a streamed chat completion, or (Message instead of Delta) a whole
// non-streamed one.
type openaiChunk struct {
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// streamError is an error the server reported in the answer; errors.Is matches
// ErrContextExceeded when it says the prompt does not fit.
type streamError struct{ msg, typ, code string }

func (e *streamError) Error() string { return "the server reported an error: " + e.msg }

func (e *streamError) Is(target error) bool {
	return target == ErrContextExceeded && contextExceeded(e.typ, e.code, e.msg)
}

// readSSEStream reads a streamed chat completion: server-sent events whose data are
// chat.completion.chunk objects, ended by "data: [DONE]". It reads nothing past [DONE]; any byte
// sequence gives an Answer or an error. go-sse parses the event stream (line endings, comments,
// multi-line data, a byte-order mark) and bounds each event's size.
func readSSEStream(r io.Reader, onDelta func(string)) (Answer, error) {
	head := &headRecorder{r: r}
	var ans Answer
	var text strings.Builder
	events, done := 0, false
	for ev, err := range sse.Read(head, &sse.ReadConfig{MaxEventSize: maxLine}) {
		if err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return Answer{}, fmt.Errorf("event %d of the answer is longer than %d MiB", events+1, maxLine>>20)
			}
			return Answer{}, fmt.Errorf("the answer broke off after %d events: %w", events, err)
		}
		events++
		data := strings.TrimSpace(ev.Data)
		if ev.Type == "error" {
			msg, typ, code := errorBody([]byte(data))
			return Answer{}, &streamError{msg: msg, typ: typ, code: code}
		}
		if (ev.Type != "" && ev.Type != "message") || data == "" {
			continue // an event of another kind, or a keep-alive
		}
		if data == "[DONE]" {
			done = true
			break
		}
		var ch openaiChunk
		if err := decodeObject([]byte(data), &ch); err != nil {
			return Answer{}, fmt.Errorf("event %d of the answer is not a chat completion chunk (%v): %s", events, err, snippet([]byte(data)))
		}
		if msg, typ, code := errorValue(ch.Error); msg != "" {
			return Answer{}, &streamError{msg: msg, typ: typ, code: code}
		}
		ans.add(ch, &text, onDelta)
	}
	ans.Text = text.String()
	if !done && ans.FinishReason == "" {
		if events == 0 {
			return Answer{}, fmt.Errorf("the answer is not an event stream: %s", snippet(head.buf))
		}
		return Answer{}, fmt.Errorf("the answer ended after %d events, before it was complete (no finish_reason, no [DONE])", events)
	}
	return ans, nil
}

// add takes in one chunk (or a whole non-streamed completion): the text of choice 0, why it
// ended, the token counts, the model.
func (ans *Answer) add(ch openaiChunk, text *strings.Builder, onDelta func(string)) {
	if ch.Model != "" {
		ans.Model = ch.Model
	}
	if u := ch.Usage; u != nil {
		ans.PromptTokens, ans.OutputTokens = max(u.PromptTokens, 0), max(u.CompletionTokens, 0)
	}
	for _, c := range ch.Choices {
		if c.Index != 0 {
			continue
		}
		if s := c.Delta.Content + c.Message.Content; s != "" {
			text.WriteString(s)
			if onDelta != nil {
				onDelta(s)
			}
		}
		if c.FinishReason != "" {
			ans.FinishReason = normalFinish(c.FinishReason)
		}
	}
}

// readOpenAIJSON reads a non-streamed chat completion.
func readOpenAIJSON(r io.Reader) (Answer, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJSONBody+1))
	switch {
	case err != nil:
		return Answer{}, fmt.Errorf("the answer broke off: %w", err)
	case len(data) > maxJSONBody:
		return Answer{}, fmt.Errorf("the answer is larger than %d MiB", maxJSONBody>>20)
	}
	var ch openaiChunk
	if err := decodeObject(data, &ch); err != nil {
		return Answer{}, fmt.Errorf("the answer is not a chat completion (%v): %s", err, snippet(data))
	}
	if msg, typ, code := errorValue(ch.Error); msg != "" {
		return Answer{}, &streamError{msg: msg, typ: typ, code: code}
	}
	if len(ch.Choices) == 0 {
		return Answer{}, fmt.Errorf("the answer has no choices: %s", snippet(data))
	}
	var ans Answer
	var text strings.Builder
	ans.add(ch, &text, nil)
	ans.Text = text.String()
	return ans, nil
}

// headRecorder passes reads through and keeps the first bytes, to quote when the answer turns
// out not to be what it should.
type headRecorder struct {
	r   io.Reader
	buf []byte
}

func (h *headRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if room := 200 - len(h.buf); room > 0 && n > 0 {
		h.buf = append(h.buf, p[:min(n, room)]...)
	}
	return n, err
}

// modelList is the answer of GET /v1/models.
type modelList struct {
	Data []struct {
		ID string `json:"id"`
	} `json:"data"`
}

func (o *openaiClient) Models(ctx context.Context) ([]string, error) {
	var list modelList
	err := o.call(ctx, func(ctx context.Context) error {
		if err := o.getJSON(ctx, "/v1/models", &list); err != nil {
			return err
		}
		if list.Data == nil {
			return fmt.Errorf("%s: GET /v1/models: the answer has no model list (data)", o.label)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			names = append(names, m.ID)
		}
	}
	return names, nil
}

// ContextLength asks llama.cpp's /props, then LM Studio's /api/v0/models; a server that has
// neither (mlx_lm.server, others) cannot tell.
func (o *openaiClient) ContextLength(ctx context.Context, model string) (int, error) {
	n := 0
	err := o.call(ctx, func(ctx context.Context) error {
		var props struct {
			NCtx     json.RawMessage `json:"n_ctx"`
			Defaults struct {
				NCtx json.RawMessage `json:"n_ctx"`
			} `json:"default_generation_settings"`
		}
		err := o.getJSON(ctx, "/props", &props)
		if err == nil {
			if n = positiveInt(props.Defaults.NCtx); n == 0 {
				n = positiveInt(props.NCtx)
			}
			if n > 0 {
				return nil
			}
		} else if fatal(ctx, err) {
			return err
		}
		var lms struct {
			Data []struct {
				ID     string          `json:"id"`
				Max    json.RawMessage `json:"max_context_length"`
				Loaded json.RawMessage `json:"loaded_context_length"`
			} `json:"data"`
		}
		if err := o.getJSON(ctx, "/api/v0/models", &lms); err != nil {
			if fatal(ctx, err) {
				return err
			}
			return nil
		}
		for _, m := range lms.Data {
			if m.ID == model || strings.EqualFold(m.ID, model) {
				if n = positiveInt(m.Loaded); n == 0 {
					n = positiveInt(m.Max)
				}
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// fatal reports whether a failed optional request means the server cannot be asked anything
// (as opposed to not having that endpoint).
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRemote)
}

// Unload does nothing: OpenAI-compatible servers keep their model loaded as they are configured to.
func (o *openaiClient) Unload(ctx context.Context, model string) error { return nil }
